"""The history-event budget of every state machine's loops, checked at synth (stacks/shared/sfn_budget.py),
and measured against a run that drives the debounce loop to its force-close on the harness."""

from __future__ import annotations

import json
from unittest import mock

import pytest

from emulator import PipelineHarness, SageMakerSimulator
from stacks.serving.workflow import BUSY_LOOPS, LOCK_LOOPS, POLL_LOOPS, HistoryBudget
from stacks.shared import sfn_budget
from stacks.training import workflow as training_workflow
from stacks.training.workflow import MAX_QUIET_WINDOW_EXTENSIONS, QUIET_WINDOW_LOOPS
from tests import template_find as find
from tests.pipeline.conftest import dog_photos


def task(next_: str, catch: str | None = None) -> dict:
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::dynamodb:getItem",
        "Next": next_,
        **({"Catch": [{"ErrorEquals": ["States.ALL"], "Next": catch}]} if catch else {}),
    }


# A: Task -> B: Choice -> A (7 events) or -> C: Task -(catch)-> A (12 events); D: Wait <-> E: Pass, unlisted
GRAPH = {
    "States": {
        "A": task("B"),
        "B": {"Type": "Choice", "Choices": [{"Next": "C"}], "Default": "A"},
        "C": task("End", catch="A"),
        "End": {"Type": "Succeed"},
        "D": {"Type": "Wait", "Seconds": 1, "Next": "E"},
        "E": {"Type": "Pass", "Next": "D"},
    }
}


def test_the_longest_way_round_a_loop_counts_not_only_the_listed_one():
    assert sfn_budget.cycle_events(GRAPH, ("A", "B")) == 7
    assert sfn_budget.longest_turn(GRAPH, [("A", "B")]) == 12  # A -> B -> C -(Catch)-> A
    assert sorted(map(sorted, sfn_budget.loops_of(GRAPH))) == [["A", "B", "C"], ["D", "E"]]


def test_a_loop_no_budget_bounds_is_refused():
    with pytest.raises(ValueError, match=r"no bound on their turns.*\['D', 'E'\]"):
        sfn_budget.total_events(GRAPH, [([("A", "B")], 10)])
    bounded = sfn_budget.total_events(GRAPH, [([("A", "B")], 10), ([("D", "E")], 3)])
    assert bounded == sfn_budget.straight_events(GRAPH) + 12 * 10 + 4 * 3


def test_the_deploy_budget_counts_the_lock_take_over_path(synthesized):
    # The lock's take-over (DescribeLockOwner fails -> TakeOverLock refused -> CountLockRetry) is its
    # longest turn, longer than either listed way round.
    from emulator.synthesis import synth
    from stacks.serving.workflow import DeployWorkflow

    (deploy,) = [c for c in synth().stack.node.find_all() if isinstance(c, DeployWorkflow)]
    graph = sfn_budget.graph_of(deploy.definition)
    budget = HistoryBudget.of(graph)
    take_over = (
        "AcquireLock",
        "ReadLock",
        "IsLockHeld",
        "DescribeLockOwner",
        "IsLockHolderRunning",
        "TakeOverLock",
        "CountLockRetry",
        "IsLockRetryOver",
    )
    assert (
        budget.lock_turn
        == sfn_budget.cycle_events(graph, take_over)
        > max(sfn_budget.cycle_events(graph, loop) for loop in LOCK_LOOPS)
    )
    assert sfn_budget.unbounded_loops(graph, LOCK_LOOPS + BUSY_LOOPS + POLL_LOOPS) == []


def synth_error(context: dict | None = None) -> str | None:
    from stacks.application import build_app

    try:
        build_app(context or {}, environ={})
    except ValueError as error:
        return str(error)
    return None


def test_a_debounce_loop_that_could_pass_25000_history_events_is_refused_at_synth():
    # Planted defect caught (issue 18): the debounce loop made long enough to pass 25,000 events.
    with mock.patch.object(training_workflow, "MAX_QUIET_WINDOW_EXTENSIONS", 2_000):
        message = synth_error()
    assert message is not None and "MAX_QUIET_WINDOW_EXTENSIONS=2000" in message
    assert "history events" in message and "debounce loop" in message
    most = int(message.split("MAX_QUIET_WINDOW_EXTENSIONS of at most ")[1])
    assert MAX_QUIET_WINDOW_EXTENSIONS <= most < 2_000
    # The value it names fits, the next one does not
    with mock.patch.object(training_workflow, "MAX_QUIET_WINDOW_EXTENSIONS", most):
        assert synth_error() is None
    with mock.patch.object(training_workflow, "MAX_QUIET_WINDOW_EXTENSIONS", most + 1):
        assert synth_error() is not None


def test_the_debounce_loop_driven_to_its_force_close_writes_no_more_than_the_synth_estimate(synthesized):
    # Given uploads that keep coming: one more photo each time the run is about to close the window
    uploads = []

    with PipelineHarness(synthesized=synthesized, simulator=SageMakerSimulator()) as h:

        def upload_again() -> None:
            if len(uploads) < MAX_QUIET_WINDOW_EXTENSIONS:
                uploads.append(h.upload("datasets/doppler/dog0.jpg", photos["dog0.jpg"]))
                h.when_entering("CloseUploadWindow", upload_again)

        photos = dog_photos()
        h.when_entering("CloseUploadWindow", upload_again)
        h.upload_dataset("doppler", photos)
        h.wait_until_idle(300)

        # Then the run extended the window MAX_QUIET_WINDOW_EXTENSIONS times, force-closed it and trained
        (run,) = h.training_runs()
        assert run.status == "SUCCEEDED", (run.error, run.cause)
        assert run.entered_states.count("WindowWasExtended") == MAX_QUIET_WINDOW_EXTENSIONS
        assert "ForceCloseUploadWindow" in run.entered_states and "TrainModel" in run.entered_states
        # And its history is within the synth-time estimate, loop turn by loop turn and in all
        resources = h.synthesized.template["Resources"]
        machine = resources[find.training_machine(resources)]
        graph = json.loads(h.resolve(machine["Properties"]["DefinitionString"]))
        estimate = sfn_budget.total_events(graph, [(QUIET_WINDOW_LOOPS, MAX_QUIET_WINDOW_EXTENSIONS)])
        entries = [
            i
            for i, e in enumerate(run.events)
            if e.get("stateEnteredEventDetails", {}).get("name") == "ReadUploadWindow"
        ]
        turns = [b - a for a, b in zip(entries, entries[1:])]
        print(
            f"debounce force-close: {len(run.events)} history events measured, synth estimate {estimate}; "
            f"{max(turns)} per loop turn (budget {sfn_budget.longest_turn(graph, QUIET_WINDOW_LOOPS)})"
        )
        assert max(turns) <= sfn_budget.longest_turn(graph, QUIET_WINDOW_LOOPS)
        assert len(run.events) <= estimate
