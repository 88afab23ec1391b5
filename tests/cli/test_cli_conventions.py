"""The CLI's conventions, with the AWS CLI as the anchor: global options before or after the command,
--version, examples at the end of every --help, one line and exit 2 for every credential, profile,
region and network problem, and each exit code of docs/cli.md's table.

AWS access problems are real botocore errors: a profile missing from a real config file, no
credentials at all, a closed port standing in for an unreachable AWS (AWS_ENDPOINT_URL), and a local
server answering as AWS does for expired credentials (403 ExpiredToken in the query protocol's XML).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from scripts import cli, deploy
from scripts.cli.commands import EXAMPLES, EXIT_CODES
from tests.api.conftest import REGION, create_endpoint
from tests.conftest import ROOT

MODEL = "dog-20261120100000"
COMMANDS = sorted(next(a for a in cli.commands.parser()._actions if a.dest == "command").choices)
EXPIRED = (
    b"<ErrorResponse><Error><Type>Sender</Type><Code>ExpiredToken</Code>"
    b"<Message>The security token included in the request is expired</Message></Error></ErrorResponse>"
)


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def aws_answering_expired_token():
    """A local stand-in for AWS that refuses every call as AWS refuses expired credentials."""

    def app(environ, start_response):
        start_response("403 Forbidden", [("Content-Type", "text/xml")])
        return [EXPIRED]

    server = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    # shutdown() waits for serve_forever's next poll: 0.5 s at its default, each test.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def no_aws_config(monkeypatch, tmp_path):
    """A machine with no AWS configuration at all (no files, no variables)."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    return tmp_path


def fake_keys(monkeypatch, region: str = "us-east-1") -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE00")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_REGION", region)


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# ---- global options ----------------------------------------------------------------------------


@pytest.fixture
def live(run, harness):
    harness.live_model(MODEL)
    create_endpoint(MODEL)
    return run


@pytest.mark.parametrize(
    "argv",
    [
        ["--json", "--stack", "DreamBoothPipeline", "--region", REGION, "status"],
        ["status", "--json", "--stack", "DreamBoothPipeline", "--region", REGION],
        ["--json", "status", "--region", REGION],
        ["--region", REGION, "status", "--json", "-c", "quietWindowSeconds=5"],
    ],
)
def test_global_options_go_before_or_after_the_command(live, argv):
    code, out, err = live(*argv)
    assert code == 0, err
    assert '"live_model"' in out  # JSON, wherever --json was


def test_region_and_profile_select_the_session(no_aws_config, monkeypatch, capsys):
    # Given a real config file with a profile "work" in eu-west-1 and no region anywhere else
    (no_aws_config / "config").write_text("[profile work]\nregion = eu-west-1\n")
    (no_aws_config / "credentials").write_text(
        "[work]\naws_access_key_id = AKIAEXAMPLEEXAMPLE00\naws_secret_access_key = secret\n"
    )
    seen = {}

    def cost_region(args, session, clock):
        seen["region"], seen["profile"] = session.region_name, session.profile_name
        return 0

    monkeypatch.setattr("scripts.cli.commands.cmd_cost", cost_region)
    # Then --profile picks the profile (and its region), --region after the command overrides it
    assert cli.main(["cost", "--profile", "work"]) == 0 and seen == {"region": "eu-west-1", "profile": "work"}
    assert cli.main(["--profile", "work", "cost", "--region", "ap-south-1"]) == 0
    assert seen == {"region": "ap-south-1", "profile": "work"}


def test_context_before_and_after_the_command_are_merged(live, harness):
    code, out, err = live("-c", "stackName=Nope", "status", "-c", "stackName=DreamBoothPipeline")
    assert code == 0, err  # the later value wins, as with cdk -c


def test_version(capsys):
    import tomllib

    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"dreambooth {version}"


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_help_ends_with_examples_of_that_command(command, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main([command, "--help"] if command else ["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    tail = out.rstrip().rsplit("\n\n", 1)[-1].splitlines()
    assert tail[0] == "Examples:" and len(tail) >= 2
    assert command is None or command in EXAMPLES, f"add examples of {command} to EXAMPLES"
    assert all(line.startswith(f"  dreambooth {command or ''}".rstrip()) or command is None for line in tail[1:])
    for option in ("--profile", "--region", "--stack", "--json"):
        assert option in out


def test_the_top_help_lists_the_exit_codes_of_the_docs():
    cli_doc = (ROOT / "docs/cli.md").read_text()
    table = dict(re.findall(r"^\| `(\d+)` \| (.+?) \|$", cli_doc, re.M))
    assert {int(code) for code in table} == set(EXIT_CODES)
    for code, meaning in EXIT_CODES.items():
        assert table[str(code)] == meaning


# ---- exit code 2: credentials, profile, region, network --------------------------------------------


def test_an_unknown_profile_is_one_line_and_exit_2(no_aws_config, capsys):
    assert cli.main(["--profile", "work", "status"]) == 2
    line = one_line(capsys.readouterr().err)
    assert "AWS profile 'work' not found" in line and "--profile" in line


def test_aws_profile_naming_a_missing_profile_is_one_line_and_exit_2(no_aws_config, monkeypatch, capsys):
    monkeypatch.setenv("AWS_PROFILE", "work")
    assert cli.main(["models"]) == 2
    assert "AWS profile 'work' not found" in one_line(capsys.readouterr().err)


def test_no_credentials_is_one_line_and_exit_2(no_aws_config, monkeypatch, capsys):
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    assert cli.main(["status"]) == 2
    assert "no usable AWS credentials" in one_line(capsys.readouterr().err)


def test_no_region_is_one_line_and_exit_2(no_aws_config, monkeypatch, capsys):
    fake_keys(monkeypatch)
    monkeypatch.delenv("AWS_REGION")
    assert cli.main(["models"]) == 2
    assert "no AWS region set" in one_line(capsys.readouterr().err)


def test_a_malformed_region_is_one_line_and_exit_2(no_aws_config, monkeypatch, capsys):
    fake_keys(monkeypatch)
    assert cli.main(["--region", "eu west 1", "status"]) == 2
    assert "not a valid AWS region name" in one_line(capsys.readouterr().err)


def test_no_network_is_one_line_and_exit_2(no_aws_config, monkeypatch, capsys):
    fake_keys(monkeypatch)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    assert cli.main(["status"]) == 2
    assert "cannot reach AWS" in one_line(capsys.readouterr().err)


def test_expired_credentials_are_one_line_and_exit_2(no_aws_config, monkeypatch, capsys, aws_answering_expired_token):
    fake_keys(monkeypatch)
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_answering_expired_token)
    assert cli.main(["status"]) == 2
    line = one_line(capsys.readouterr().err)
    assert "AWS refused these credentials (ExpiredToken" in line


def test_preflight_without_credentials_exits_2(no_aws_config, monkeypatch, capsys):
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    assert cli.main(["preflight"]) == 2
    out = capsys.readouterr().out
    assert "credentials  FAIL" in out and "aws configure" in out


def test_a_missing_folder_is_a_usage_error(run, tmp_path):
    code, _, err = run("upload", str(tmp_path / "nope"), "--name", "dog")
    assert code == 2 and one_line(err) == f"DIR: {tmp_path / 'nope'} is not a folder"


def test_the_api_not_reachable_is_exit_2(live, monkeypatch):
    from tests.cli.conftest import create_stack

    create_stack({"BucketName": "b", "ApiUrl": "http://127.0.0.1:9/v1/"}, name="Gone")
    code, _, err = live("status", "--stack", "Gone")
    assert code == 2 and "API not reachable (check the network)" in one_line(err)


# ---- make deploy ---------------------------------------------------------------------------------


def test_deploy_help_is_its_own_and_runs_nothing(capsys):
    commands = []
    assert deploy.main(["--help"], session=object(), run=lambda c, e: commands.append(c) or 0, environ={}) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: make deploy") and "--no-rehearsal" in out
    assert out.rstrip().rsplit("\n\n", 1)[-1].startswith("Examples:\n  make deploy")
    assert commands == []  # no synth, no rehearsal


def test_the_rehearsals_help_ends_with_examples_too(capsys):
    from scripts import rehearse

    with pytest.raises(SystemExit) as done:
        rehearse.main(["--help"])
    assert done.value.code == 0
    tail = capsys.readouterr().out.rstrip().rsplit("\n\n", 1)[-1].splitlines()
    assert tail[0] == "Examples:" and all(
        line.startswith("  .venv/bin/python -m scripts.rehearse") for line in tail[1:]
    )


def test_make_deploy_passes_args_to_the_deploy_command():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^deploy:.*\n\t@?\$\(PY\) -m scripts\.deploy \$\(ARGS\)$", makefile, re.M)


@pytest.mark.parametrize(
    "setup, expected",
    [
        ("profile", "AWS profile 'work' not found"),
        ("expired", "AWS refused these credentials (ExpiredToken"),
        ("network", "cannot reach AWS"),
    ],
)
def test_deploy_access_problems_are_one_line_and_exit_2(
    setup, expected, no_aws_config, monkeypatch, capsys, aws_answering_expired_token
):
    if setup == "profile":
        monkeypatch.setenv("AWS_PROFILE", "work")
    else:
        fake_keys(monkeypatch)
        monkeypatch.setenv(
            "AWS_ENDPOINT_URL", aws_answering_expired_token if setup == "expired" else "http://127.0.0.1:9"
        )
    commands = []
    code = deploy.main([], run=lambda c, e: commands.append(c) or 0, environ=dict(os.environ))
    assert code == 2 and commands == []
    line = one_line(capsys.readouterr().err)
    assert expected in line and line.endswith("Nothing was deployed.")


# ---- no jsii/Node noise ----------------------------------------------------------------------------


def test_preflight_prints_no_node_banner(no_aws_config):
    # A real process without JSII_SILENCE_... in its environment: preflight imports aws_cdk (jsii)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JSII_")}
    env.update(AWS_REGION="us-east-1")
    done = subprocess.run(
        [sys.executable, "-m", "scripts.cli", "preflight"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "credentials  FAIL" in done.stdout
    assert done.stderr == ""  # no banner, no warning
    assert "end-of-life" not in done.stdout.lower() and "node" not in done.stdout.lower()
