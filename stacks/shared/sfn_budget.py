"""History-event budgets of Step Functions loops, read from the real state graph.

A standard workflow execution may write at most 25,000 history events; past that AWS fails it,
whatever the definition catches. A loop that polls every few seconds for an hour passes that long
before its own give-up branch runs. `cycle_events` counts what one turn of a loop writes from the
rendered states (their types and resources) and checks that the named states really form that
loop, so the bound follows the definition when it changes.

Events per state, as AWS writes them for a standard workflow: a Task writes entered, scheduled,
started, succeeded/failed and exited (5); a callback Task (`.waitForTaskToken`) one more
(submitted); Wait, Choice, Pass, Succeed write entered and exited (2); Fail one.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

HISTORY_EVENT_LIMIT = 25_000
# Kept free for what a budget does not count: Lambda service-exception retries, the failure and
# notification path, an execution's start and end.
HISTORY_EVENT_RESERVE = 1_000
_EVENTS_BY_TYPE = {"Task": 5, "Wait": 2, "Choice": 2, "Pass": 2, "Succeed": 2, "Fail": 1}


def graph_of(start: Any) -> dict[str, Any]:
    """{"States": {name: state JSON}} of every state reachable from `start` (a bound CDK State)."""
    from aws_cdk import Stack
    from aws_cdk import aws_stepfunctions as sfn

    states = sfn.State.find_reachable_states(start, include_error_handlers=True)
    stack = Stack.of(start)
    return {"States": {state.state_id: stack.resolve(state.to_state_json()) for state in states}}


def state_events(state: Mapping[str, Any]) -> int:
    events = _EVENTS_BY_TYPE.get(state["Type"])
    if events is None:
        raise ValueError(f"no event count for {state['Type']} states")
    resource = state.get("Resource")
    if state["Type"] == "Task" and isinstance(resource, str) and resource.endswith(".waitForTaskToken"):
        events += 1
    elif state["Type"] == "Task" and not isinstance(resource, str):
        # Resource is a token (e.g. Fn::Join of the partition): look for the callback suffix in it.
        if ".waitForTaskToken" in str(resource):
            events += 1
    return events


def successors(state: Mapping[str, Any]) -> set[str]:
    """Every state a state can go to: Next, Default, each Choice rule's Next, each Catch's Next."""
    found = {state[key] for key in ("Next", "Default") if key in state}
    found |= {rule["Next"] for rule in state.get("Choices", [])}
    found |= {catcher["Next"] for catcher in state.get("Catch", [])}
    return found


def cycle_events(graph: Mapping[str, Any], cycle: Sequence[str]) -> int:
    """Events one turn of `cycle` writes; ValueError unless each state can go on to the next one
    and the last back to the first (so a renamed or rewired state cannot go unnoticed)."""
    states = graph["States"]
    for here, there in zip(cycle, [*cycle[1:], cycle[0]]):
        if here not in states or there not in successors(states[here]):
            raise ValueError(f"{here} -> {there} is not a transition of the state machine")
    return sum(state_events(states[name]) for name in cycle)


def straight_events(graph: Mapping[str, Any]) -> int:
    """An upper bound on the events of one pass that visits each state at most once."""
    return sum(state_events(state) for state in graph["States"].values())


def total_events(graph: Mapping[str, Any], loops: Iterable[tuple[Sequence[str], int]]) -> int:
    """Worst case: every state once, plus each loop's cycle as often as its bound lets it turn."""
    return straight_events(graph) + sum(cycle_events(graph, cycle) * turns for cycle, turns in loops)


def fits(events: int) -> bool:
    return events <= HISTORY_EVENT_LIMIT - HISTORY_EVENT_RESERVE
