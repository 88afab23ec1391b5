"""`dreambooth generate`, `status`, `models`, `use`; stack outputs, authentication and exit codes."""

from __future__ import annotations

import tomllib

import boto3
import pytest
from moto.sagemaker.models import sagemaker_backends

from scripts import cli
from tests.api.conftest import ACCOUNT, BUCKET, ENDPOINT, REGION, create_endpoint
from tests.cli.conftest import create_stack
from tests.conftest import ROOT

MODEL = "dog-20261120100000"


def set_endpoint_status(status: str) -> None:
    sagemaker_backends[ACCOUNT][REGION].endpoints[ENDPOINT].endpoint_status = status


@pytest.fixture
def live(run, harness):
    """A live model on an in-service endpoint."""
    harness.live_model(MODEL)
    create_endpoint(MODEL)
    return run


# ---- generate ---------------------------------------------------------------------------------


def test_generate_saves_the_images_and_prints_their_paths(live, harness, tmp_path):
    images = harness.queue_images(2)
    out = tmp_path / "out"
    code, stdout, err = live("generate", "a photo of a Doppler dog", "-n", "2", "--seed", "7", "--out", str(out))
    assert code == 0, err
    assert stdout.split() == [str(out / "0.jpg"), str(out / "1.jpg")]
    assert [(out / f"{i}.jpg").read_bytes() for i in range(2)] == images
    assert "succeeded on model dog-20261120100000" in err


def test_generate_json_shape_and_default_folder(live, harness, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    harness.queue_images(1)
    code, body, _ = live.json("generate", "a photo of a Doppler dog", "--seed", "42")
    assert code == 0
    assert set(body) == {"id", "status", "model_id", "prompt", "error", "images"}
    assert body["status"] == "succeeded" and body["model_id"] == MODEL and body["error"] is None
    assert body["images"] == [{"path": f"generated/{body['id']}/0.jpg", "seed": 42}]
    assert (tmp_path / "generated" / body["id"] / "0.jpg").stat().st_size > 0


def test_generate_never_overwrites_an_existing_file(live, harness, tmp_path):
    (tmp_path / "0.jpg").write_bytes(b"my own picture")
    (tmp_path / "0-1.jpg").write_bytes(b"another one")
    images = harness.queue_images(1)
    code, stdout, _ = live("generate", "a photo of a Doppler dog", "--out", str(tmp_path))
    assert code == 0
    assert stdout.split() == [str(tmp_path / "0-2.jpg")]
    assert (tmp_path / "0.jpg").read_bytes() == b"my own picture"
    assert (tmp_path / "0-1.jpg").read_bytes() == b"another one"
    assert (tmp_path / "0-2.jpg").read_bytes() == images[0]


def test_generate_waits_out_503_retry_after_then_succeeds(live, harness, tmp_path, monkeypatch):
    # Given a backing AWS service that is busy once (the API answers 503 with Retry-After: 2)
    from botocore.exceptions import ClientError

    generations = harness.api_module.generations
    original = generations.create
    calls = []

    def busy_once(request):
        calls.append(request)
        if len(calls) == 1:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "PutItem")
        return original(request)

    monkeypatch.setattr(generations, "create", busy_once)
    harness.queue_images(1)
    # When generating
    code, stdout, err = live("generate", "a photo of a Doppler dog", "--out", str(tmp_path))
    # Then the CLI waited the API's Retry-After once, showing the API's message, and got the image
    assert code == 0, err
    assert live.clock.sleeps == [2.0]
    assert "a backing AWS service is busy; try again shortly (retrying in 2s)" in err
    assert stdout.split() == [str(tmp_path / "0.jpg")]
    assert [r["method"] for r in live.api.requests].count("POST") == 2


def test_generate_shows_why_a_generation_waits_while_the_endpoint_is_being_created(live, harness, tmp_path):
    set_endpoint_status("Creating")
    code, stdout, err = live("generate", "a photo of a Doppler dog", "--out", str(tmp_path), "--timeout", "0.5")
    assert code == 1
    assert "queued (the endpoint is being created, usually up to 10 minutes" in err
    assert "Timed out" in err or "still queued" in err
    assert list(tmp_path.iterdir()) == [] and stdout == ""


def test_generate_polls_a_queued_generation_until_it_is_done(live, harness, tmp_path):
    # Given SageMaker answering only after the API answered 202 (a timeout under 1 s asks the API not
    # to hold the request: wait 0)
    harness.mode = "defer"
    harness.queue_images(1)
    live.clock.at_sleep(1, harness.answer_deferred)
    code, stdout, err = live("generate", "a photo of a Doppler dog", "--out", str(tmp_path), "--timeout", "0.9")
    assert code == 0, err
    assert "queued (at SageMaker: running, or waiting for a free instance) on model" in err
    assert "succeeded" in err
    assert stdout.split() == [str(tmp_path / "0.jpg")]


def test_generate_gives_up_on_a_generation_still_queued_at_the_timeout(live, harness, tmp_path):
    harness.mode = "defer"
    code, stdout, err = live("generate", "a photo of a Doppler dog", "--out", str(tmp_path), "--timeout", "0.5")
    assert code == 1
    assert "still queued after 0s; it goes on: GET /generations/" in err
    assert stdout == "" and list(tmp_path.iterdir()) == []


def test_generate_with_a_bad_field_is_a_usage_error(live, tmp_path):
    code, _, err = live("generate", "a photo", "-n", "9", "--out", str(tmp_path))
    assert code == 2
    assert "num_images: must be at most 4" in err


def test_a_failed_generation_exits_1_with_the_reason(live, harness, tmp_path):
    harness.queue_model_error("CUDA out of memory")
    code, _, err = live("generate", "a photo of a Doppler dog", "--out", str(tmp_path))
    assert code == 1
    assert "failed: the model failed: ClientError" in err and "CUDA out of memory" in err


# ---- status, models, use ----------------------------------------------------------------------


def test_status_text_and_json(live, harness):
    harness.put_model("cow-20261122000000", status="training")
    code, out, _ = live("status")
    assert code == 0
    assert out.splitlines() == [
        "Endpoint DreamBoothPipeline-sd: in_service",
        'Live model: dog-20261120100000 (dataset dog); prompt phrase: "a photo of a Doppler dog"',
        "In progress: cow-20261122000000 training",
    ]
    code, body, _ = live.json("status")
    assert body["endpoint"]["state"] == "in_service" and body["live_model"]["model_id"] == MODEL
    assert [m["model_id"] for m in body["training"]] == ["cow-20261122000000"]


def test_models_table_and_json(live, harness):
    harness.put_model(
        "cat-20261121000000",
        status="failed",
        createdAt={"S": "2026-11-21T00:00:00Z"},
        failureReason={"S": "invalid dataset: 2 usable images"},
    )
    code, out, _ = live("models")
    assert code == 0
    header, first, second = out.splitlines()
    assert header.split() == ["MODEL", "DATASET", "STATUS", "LIVE", "CREATED", "PROMPT", "/", "REASON"]
    assert first.split()[:4] == ["cat-20261121000000", "cat", "failed", "2026-11-21T00:00:00Z"]
    assert first.endswith("invalid dataset: 2 usable images")
    assert second.split()[:4] == [MODEL, "dog", "live", "*"]
    code, body, _ = live.json("models")
    assert body["live_model_id"] == MODEL and [m["model_id"] for m in body["models"]] == ["cat-20261121000000", MODEL]


def test_use_switches_the_live_model_and_follows_until_it_serves(live, harness):
    harness.put_model("cat-20261121000000", status="retired")
    live.clock.at_sleep(
        1, lambda: harness.put_model("cat-20261121000000", status="deploying", updatedAt={"S": "2026-11-25T10:00:00Z"})
    )

    def switched() -> None:
        harness.put_model("cat-20261121000000", status="live", updatedAt={"S": "2026-11-25T10:09:00Z"})
        harness.set_live("cat-20261121000000")

    live.clock.at_sleep(3, switched)
    code, body, err = live.json("use", "cat-20261121000000", "--poll-seconds", "20")
    assert code == 0, err
    assert body["switch"]["state"] == "started"
    assert [p["phase"] for p in body["phases"]] == ["retired", "deploying", "live"]
    assert body["model"]["live"] is True


def test_use_reports_a_failed_switch_only_once_the_registry_changed(live, harness):
    # Given a model whose earlier deployment had failed (the API lets it be tried again)
    harness.put_model("cat-20261121000000", status="failed", failureReason={"S": "old failure"})
    live.clock.at_sleep(
        2,
        lambda: harness.put_model(
            "cat-20261121000000",
            status="failed",
            failureReason={"S": "CapacityError: no ml.g4dn.2xlarge"},
            updatedAt={"S": "2026-11-25T10:05:00Z"},
        ),
    )
    code, _, err = live("use", "cat-20261121000000")
    assert code == 1
    assert "Failed: CapacityError: no ml.g4dn.2xlarge" in err and "old failure" not in err
    assert len(live.clock.sleeps) == 2


def test_use_no_wait_returns_once_started_and_a_second_switch_meanwhile_is_refused(live, harness):
    harness.put_model("cat-20261121000000", status="retired")
    code, out, _ = live("use", "cat-20261121000000", "--no-wait")
    assert code == 0 and "Deployment of cat-20261121000000 started" in out
    assert live.clock.sleeps == []
    code, _, err = live("use", MODEL)  # moto's deployment execution never ends
    assert code == 1 and "409 a deployment is already in progress" in err


def test_use_of_the_live_model_says_so(live):
    code, out, _ = live("use", MODEL)
    assert code == 0 and out.strip() == f"Model {MODEL} is already live."


def test_use_of_an_unknown_model_fails_with_the_apis_message(live):
    code, _, err = live("use", "nope-20260101000000")
    assert code == 1
    assert "404 no model with id 'nope-20260101000000'" in err


# ---- deployment lookup, authentication, exit codes ---------------------------------------------


def test_a_stack_that_is_not_deployed_exits_3(live):
    code, _, err = live("--stack", "SomeOtherStack", "status")
    assert code == 3
    assert "stack SomeOtherStack is not deployed in us-east-1" in err


def test_a_stack_without_the_api_output_exits_3(live):
    create_stack({"BucketName": BUCKET}, name="OldStack")
    code, _, err = live("status", "--stack", "OldStack")
    assert code == 3
    assert "has no output 'ApiUrl'" in err


def test_no_region_is_a_configuration_error(live, monkeypatch, tmp_path, capsys):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    assert cli.main(["status"], session=boto3.Session(), clock=live.clock) == 2
    assert "no AWS region set" in capsys.readouterr().err


def test_a_wrong_api_key_is_refused_by_the_gateway_and_exits_1(live):
    other = boto3.client("apigateway", region_name=REGION).create_api_key(
        name="x", value="wrong-value-of-twenty-characters", enabled=True
    )
    create_stack({"BucketName": BUCKET, "ApiUrl": live.url, "ApiKeyId": other["id"]}, name="WrongKey")
    code, _, err = live("--stack", "WrongKey", "models")
    assert code == 1
    assert "403 Forbidden" in err


def test_the_key_is_read_from_api_gateway_and_sent(live):
    assert live("models")[0] == 0
    request = live.api.requests[-1]
    assert request["path"] == "/v1/models"
    assert request["headers"]["x-api-key"] == "local-test-key-0123456789abcdef"


def test_iam_mode_signs_requests_with_sigv4(run_iam, harness):
    harness.live_model(MODEL)
    create_endpoint(MODEL)
    code, out, err = run_iam("status")
    assert code == 0, err
    request = run_iam.api.requests[-1]
    access_key = run_iam.session.get_credentials().access_key
    assert request["headers"]["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={access_key}/")
    assert "SignedHeaders=accept;host;x-amz-date" in request["headers"]["authorization"]
    assert "/us-east-1/execute-api/aws4_request" in request["headers"]["authorization"]
    assert "x-api-key" not in request["headers"]


# ---- the command itself -------------------------------------------------------------------------


@pytest.mark.parametrize("command", [None, "preflight", "cost", "upload", "status", "models", "use", "generate"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main([command, "--help"] if command else ["--help"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: dreambooth{' ' + command if command else ''}")


def test_bad_usage_exits_2(capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["generate"])
    assert stopped.value.code == 2
    assert "PROMPT" in capsys.readouterr().err


def test_the_dreambooth_console_script_is_the_cli():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"] == {"dreambooth": "scripts.cli:main"}
    assert "scripts" in project["tool"]["setuptools"]["packages"]


def test_generate_waits_long_enough_by_default_for_an_instance_to_start_from_zero():
    from scripts.cli.commands import parser

    # Starting an instance takes up to 10 minutes or more: the default must not give up as it comes up
    assert parser().parse_args(["generate", "a photo"]).timeout == 1800


# ---- retrain ----------------------------------------------------------------------------------


def test_retrain_starts_one_retrain_and_follows_until_the_model_is_live(live, harness):
    harness.put_model(
        "cat-20261121000000",
        status="failed",
        retryable={"BOOL": True},
        failureReason={"S": "training failed: CapacityError: no ml.g4dn.2xlarge"},
    )

    def trained() -> None:
        harness.put_model("cat-20261121000000", status="live", updatedAt={"S": "2026-11-25T10:30:00Z"})
        harness.set_live("cat-20261121000000")

    live.clock.at_sleep(2, trained)
    code, body, err = live.json("retrain", "cat-20261121000000", "--poll-seconds", "20")
    assert code == 0, err
    assert body["retrain"]["training_job_name"] == "cat-20261121000000-r1"
    assert "nothing is uploaded again" in err
    assert [p["phase"] for p in body["phases"]][-1] == "live"


def test_retrain_of_an_invalid_dataset_is_refused_with_the_way_out(live, harness):
    harness.put_model("cat-20261121000000", status="failed", failureReason={"S": "invalid dataset: 2 usable images"})
    code, _, err = live("retrain", "cat-20261121000000")
    assert code == 1
    assert "409" in err and "retried only after it changes" in err


# ---- web ------------------------------------------------------------------------------------------


def test_web_prints_the_page_address_and_the_api_key(run):
    code, out, err = run("web")
    assert code == 0, err
    assert out.splitlines()[:2] == [f"Web page: {run.url}", "API key:  local-test-key-0123456789abcdef"]
    code, body, _ = run.json("web")
    assert body == {"url": run.url, "api_key": "local-test-key-0123456789abcdef", "opened": False}


def test_web_open_opens_the_page_in_the_browser(run, monkeypatch):
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or True)
    code, out, _ = run("web", "--open")
    assert code == 0 and opened == [run.url] and "Opened in your browser." in out


def test_web_in_iam_mode_says_the_page_cannot_be_used(run_iam):
    code, out, _ = run_iam("web")
    assert code == 1 and "apiAuth=iam" in out and "API key" not in out
