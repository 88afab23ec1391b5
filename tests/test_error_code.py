"""contract.error_code: the one way the functions and the scripts read an AWS error's code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from dreambooth_shared.contract import error_code
from stacks.shared.assets import lambda_dir
from tests.conftest import ROOT

# Where the expression is not retyped (serving's, cleanup's and monitoring's functions: not yet).
SHARED_BY = [lambda_dir("api"), lambda_dir("training"), lambda_dir("intake"), ROOT / "scripts"]
INLINE = re.compile(r"""\.response(\.get\(\s*["']Error["']|\[\s*["']Error["']\s*\]\s*\[\s*["']Code)""")


@pytest.mark.parametrize(
    "response, code",
    [
        ({"Error": {"Code": "NoSuchKey", "Message": "gone"}}, "NoSuchKey"),
        ({"Error": {"Code": "404", "Message": "Not Found"}}, "404"),  # a HEAD: no body, the status as the code
        ({"Error": {}}, ""),
        ({}, ""),
    ],
)
def test_the_code_of_a_client_error(response, code):
    assert error_code(ClientError(response, "HeadObject")) == code


def test_anything_else_has_no_code():
    assert error_code(ValueError("no response")) == ""
    assert error_code(RuntimeError()) == ""


def test_no_module_reads_the_code_itself():
    # Planted defect caught: a handler reading error.response["Error"]["Code"] again.
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in SHARED_BY
        for path in sorted(Path(folder).rglob("*.py"))
        if not path.is_symlink()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if INLINE.search(line) and "Message" not in line
    ]
    assert found == [], "use contract.error_code(error)"
