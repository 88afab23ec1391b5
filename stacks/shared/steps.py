"""Named parts of a state machine (`Step`s) that link top-down: `lock.then(model).then(rollout)`.

A `Step` is a `StateMachineFragment`: its states are named by their ids (no prefix), so the
definition is what the same states would make without it. A step's ways out are its end states
and any Choice rule that leads `ONWARD`; `then(step)` sends them all to `step`'s first state.
A Choice with an `ONWARD` rule gets its rules, in the order given, only when the step is linked
(Step Functions tries the rules in order, and CDK can only append them).

CDK writes the states into the definition in the order it finds them, following each state's
links in the order they were made: moving states between steps keeps the definition's meaning,
and keeps its text only if the links are made in the same order.
"""

from __future__ import annotations

from typing import Optional, Sequence, TypeVar, Union

from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct


class _Onward:
    def __repr__(self) -> str:
        return "ONWARD"


ONWARD = _Onward()
"""The target of a Choice rule that leaves the step for the next one."""

Target = Union[sfn.IChainable, _Onward]
Rules = Sequence[tuple[sfn.Condition, Target]]
Next = TypeVar("Next", bound=sfn.IChainable)


class Step(sfn.StateMachineFragment):
    """A named part of a state machine. Subclasses build their states and call `begin` and `end`."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self._start: Optional[sfn.State] = None
        self._ends: list[sfn.INextable] = []
        self._onward: list[tuple[sfn.Choice, Rules, Optional[Target]]] = []
        self._onward_catches: list[tuple[sfn.TaskStateBase, list[str], Optional[str]]] = []

    @property
    def start_state(self) -> sfn.State:
        assert self._start is not None, f"{self.node.id} has no first state"
        return self._start

    @property
    def end_states(self) -> list[sfn.INextable]:
        return list(self._ends)

    def begin(self, state: sfn.IChainable) -> None:
        """The step's first state (a state or a chain)."""
        self._start = state.start_state

    def end(self, *states: sfn.INextable) -> None:
        """States whose `Next` is the next step's first state."""
        self._ends.extend(states)

    def choice(self, state_id: str, rules: Rules, otherwise: Optional[Target] = None) -> sfn.Choice:
        """A Choice state with `rules` (condition, target) tried in order; a target may be ONWARD."""
        choice = sfn.Choice(self, state_id)
        if otherwise is ONWARD or any(target is ONWARD for _, target in rules):
            self._onward.append((choice, rules, otherwise))
        else:
            _add_rules(choice, rules, otherwise, onward=None)
        return choice

    def catch_onward(self, state: sfn.TaskStateBase, errors: list[str], result_path: Optional[str]) -> None:
        """`state`'s `errors` go on to the next step too (added to its Catch list when linked)."""
        self._onward_catches.append((state, errors, result_path))

    def then(self, step: Next) -> Next:
        """Every way out of this step goes to `step`; returns `step`, so that links read in order."""
        for state, errors, result_path in self._onward_catches:
            state.add_catch(step, errors=errors, result_path=result_path)
        for state in self._ends:
            state.next(step)
        for choice, rules, otherwise in self._onward:
            _add_rules(choice, rules, otherwise, onward=step)
        self._ends, self._onward, self._onward_catches = [], [], []
        return step


def _add_rules(choice: sfn.Choice, rules: Rules, otherwise: Optional[Target], onward: Optional[sfn.IChainable]) -> None:
    for condition, target in rules:
        choice.when(condition, onward if target is ONWARD else target)
    if otherwise is not None:
        choice.otherwise(onward if otherwise is ONWARD else otherwise)
