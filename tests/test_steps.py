"""Step (stacks/shared/steps.py): named fragments linked with `then`, without renaming or reordering states."""

from __future__ import annotations

from aws_cdk import App, Stack
from aws_cdk import aws_stepfunctions as sfn

from stacks.shared.sfn_budget import graph_of
from stacks.shared.steps import ONWARD, Step


class _Check(Step):
    """A Choice whose FIRST rule leaves the step, a second rule and a default inside it."""

    def __init__(self, scope, construct_id):
        super().__init__(scope, construct_id)
        inside = sfn.Pass(self, "Inside")
        task = sfn.CustomState(self, "Publish", state_json={"Type": "Task", "Resource": "arn:aws:states:::x"})
        self.catch_onward(task, errors=["States.ALL"], result_path="$.error")
        self.begin(
            task.next(
                self.choice(
                    "IsDone",
                    [
                        (sfn.Condition.is_present("$.done"), ONWARD),
                        (sfn.Condition.is_present("$.half"), inside),
                    ],
                    otherwise=sfn.Fail(self, "Neither"),
                )
            )
        )
        self.end(inside)


class _Last(Step):
    def __init__(self, scope, construct_id):
        super().__init__(scope, construct_id)
        self.begin(sfn.Succeed(self, "Finished"))


def _graph():
    stack = Stack(App(), "Steps")
    first, last = _Check(stack, "Check"), _Last(stack, "Last")
    start = sfn.Pass(stack, "Start")
    start.next(first)
    assert first.then(last) is last
    return graph_of(start)["States"]


def test_states_keep_their_names_and_every_way_out_reaches_the_next_step():
    states = _graph()
    assert set(states) == {"Start", "Publish", "IsDone", "Inside", "Neither", "Finished"}
    assert states["Start"]["Next"] == "Publish"
    assert states["Inside"]["Next"] == "Finished"
    assert states["Publish"]["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Finished"}]


def test_an_onward_rule_keeps_its_place_among_the_choice_rules():
    choice = _graph()["IsDone"]
    assert [(rule["Variable"], rule["Next"]) for rule in choice["Choices"]] == [
        ("$.done", "Finished"),
        ("$.half", "Inside"),
    ]
    assert choice["Default"] == "Neither"
