"""CloudFormation intrinsics (Ref, Fn::GetAtt, Fn::Join, ...) resolved against the physical ids the
harness chose for moto's resources."""

from __future__ import annotations

from typing import Any

from emulator.account import ACCOUNT, REGION


class Resolver:
    """Resolves CloudFormation intrinsics against the physical ids chosen for moto."""

    def __init__(self, template: dict[str, Any], refs: dict[str, str], arns: dict[str, str], stack_name: str):
        self.template = template
        self.refs = refs
        self.arns = arns
        self.pseudo = {
            "AWS::Partition": "aws",
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": stack_name,
            "AWS::NoValue": None,
        }

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                if arg in self.pseudo:
                    return self.pseudo[arg]
                return self.refs[arg]
            if key == "Fn::GetAtt":
                logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                if attribute == "Arn":
                    return self.arns[logical]
                if attribute == "Name":
                    return self.refs[logical]
                raise KeyError(f"GetAtt {logical}.{attribute} is not resolvable in the harness")
            if key == "Fn::Join":
                separator, parts = arg
                return separator.join(str(self(p)) for p in self(parts))
            if key == "Fn::FindInMap":
                mapping, first, second = (self(a) for a in arg)
                return self.template["Mappings"][mapping][first][second]
            if key == "Fn::Select":
                index, items = arg
                return self(items)[int(self(index))]
            if key == "Fn::Split":
                separator, text = arg
                return self(text).split(separator)
            if key == "Fn::Sub":
                raise KeyError("Fn::Sub is not used by the pipeline template")
        return {k: self(v) for k, v in value.items()}


def getatt_targets(value: Any) -> set[str]:
    """Logical ids named by Fn::GetAtt anywhere inside a template value."""
    if isinstance(value, list):
        return set().union(*(getatt_targets(v) for v in value)) if value else set()
    if isinstance(value, dict):
        if set(value) == {"Fn::GetAtt"}:
            arg = value["Fn::GetAtt"]
            return {arg[0] if isinstance(arg, list) else arg.split(".", 1)[0]}
        return set().union(*(getatt_targets(v) for v in value.values())) if value else set()
    return set()
