"""Find a synthesized template's resources by what they are, never by their logical ids.

A logical id is a construct path plus a hash: renaming a construct (or moving it to another
folder) changes it without changing what the resource does. Tests find a function by its handler,
a role by who assumes it or what uses it, a state machine by the service integrations it calls,
an alarm by the metric it watches, and then assert on the properties.

Every finder takes the template's "Resources" mapping and returns the one logical id that matches
(and fails, naming what it looked for, when none or several do).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping

Resources = Mapping[str, Mapping[str, Any]]


def of_type(resources: Resources, type_: str) -> dict[str, Mapping[str, Any]]:
    return {k: v for k, v in resources.items() if v["Type"] == type_}


def only(resources: Resources, type_: str, test: Callable[[Mapping[str, Any]], bool], what: str) -> str:
    """The logical id of the one resource of `type_` whose Properties pass `test`."""
    found = [k for k, v in of_type(resources, type_).items() if test(v.get("Properties", {}))]
    assert len(found) == 1, f"{len(found)} {type_} resources are {what}: {found}"
    return found[0]


def function(resources: Resources, handler: str) -> str:
    """The Lambda function whose Handler is `handler` ("module.function")."""
    return only(
        resources, "AWS::Lambda::Function", lambda p: p.get("Handler") == handler, f"with the handler {handler}"
    )


def role_of(resources: Resources, logical: str) -> str:
    """The role a function (Role) or a state machine (RoleArn) runs with."""
    props = resources[logical]["Properties"]
    (role, attribute) = (props.get("Role") or props["RoleArn"])["Fn::GetAtt"]
    assert attribute == "Arn"
    return role


def role_described(resources: Resources, description_start: str) -> str:
    """The role whose Description starts with `description_start`."""
    return only(
        resources,
        "AWS::IAM::Role",
        lambda p: p.get("Description", "").startswith(description_start),
        f"described as {description_start!r}...",
    )


def role_assumed_by_role(resources: Resources, role: str) -> str:
    """The role that `role` (a logical id) may assume."""
    return only(
        resources,
        "AWS::IAM::Role",
        lambda p: any(
            s.get("Principal") == {"AWS": {"Fn::GetAtt": [role, "Arn"]}}
            for s in p["AssumeRolePolicyDocument"]["Statement"]
        ),
        f"assumed by {role}",
    )


def text(value: Any) -> str:
    """A string property (literal, or an Fn::Join) with every intrinsic in it replaced by <>, for reading."""
    if isinstance(value, str):
        return value
    return "".join(p if isinstance(p, str) else "<>" for p in value["Fn::Join"][1])


def definition_text(machine: Mapping[str, Any]) -> str:
    """A state machine's definition with every intrinsic replaced by <>, for reading."""
    return text(machine["Properties"]["DefinitionString"])


def states(machine: Mapping[str, Any]) -> dict[str, Any]:
    """A state machine's States, every intrinsic read as the string X."""
    return json.loads(definition_text(machine).replace('"<>"', '"X"').replace("<>", "X"))["States"]


def state_machine(resources: Resources, integration: str) -> str:
    """The state machine with a Task state calling the service integration `integration`
    (the part after "states:::", e.g. "sagemaker:createTrainingJob.sync")."""

    def calls(machine: Mapping[str, Any]) -> bool:
        return any(
            s.get("Type") == "Task" and str(s.get("Resource", "")).endswith(f":states:::{integration}")
            for s in _all_states(states(machine))
        )

    found = [k for k, v in of_type(resources, "AWS::StepFunctions::StateMachine").items() if calls(v)]
    assert len(found) == 1, f"{len(found)} state machines call {integration}: {found}"
    return found[0]


def _all_states(top: Mapping[str, Any]):
    for state in top.values():
        yield state
        for branch in state.get("Branches", []):
            yield from _all_states(branch["States"])
        if "Iterator" in state or "ItemProcessor" in state:
            yield from _all_states((state.get("Iterator") or state["ItemProcessor"])["States"])


def training_machine(resources: Resources) -> str:
    return state_machine(resources, "sagemaker:createTrainingJob.sync")


def deploy_machine(resources: Resources) -> str:
    return state_machine(resources, "aws-sdk:sagemaker:createEndpointConfig")


def topic(resources: Resources, display_name: str) -> str:
    return only(
        resources, "AWS::SNS::Topic", lambda p: p.get("DisplayName") == display_name, f"displayed as {display_name!r}"
    )


def listed(value: Any) -> list[Any]:
    """A policy field that may be one value or a list (Action, Resource), as a list."""
    return value if isinstance(value, list) else [value]


def policies_of_role(resources: Resources, role: str) -> list[dict[str, Any]]:
    """The documents of the IAM policies attached to `role` (a logical id)."""
    return [
        v["Properties"]["PolicyDocument"]
        for v in of_type(resources, "AWS::IAM::Policy").values()
        if {"Ref": role} in v["Properties"].get("Roles", [])
    ]


def statements_of_role(resources: Resources, role: str) -> list[dict[str, Any]]:
    """Every statement of the IAM policies attached to `role` (a logical id)."""
    return [s for document in policies_of_role(resources, role) for s in document["Statement"]]
