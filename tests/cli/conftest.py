"""The CLI's main() in-process, against a real local HTTP server running the real API handler.

- The API: tests/api's harness (the real handler and result function on moto), served over HTTP by
  wsgiref through the API Gateway adapter's `wsgi_app`; the server strips the stage (`/v1`) and
  does API Gateway's one job the adapter leaves out that the CLI depends on: refusing a request
  without the right `x-api-key` (or, in IAM mode, without a SigV4 signature) with 403.
- The stack: a real moto CloudFormation stack with the outputs the CLI reads, and a real moto
  API Gateway key whose value the CLI fetches.
- S3: moto (uploads, and the presigned image URLs the CLI downloads through `requests`).
- Time: the CLI's waits run on a virtual clock; `Clock.at_sleep` lets a test change the world
  between two polls (the pipeline moving on, the endpoint coming up).
"""

from __future__ import annotations

import io
import json
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import boto3
import pytest

from scripts import cli
from tests.api.conftest import BUCKET, REGION, api_module, dispatch_module, harness, results_module  # noqa: F401 (fixtures)

STACK = "DreamBoothPipeline"  # stackName's default (stacks/config.py): the CLI's default
API_KEY_VALUE = "local-test-key-0123456789abcdef"


class Clock:
    """Virtual time: sleep() advances it at once and runs the hooks due at that sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.hooks: dict[int, Callable[[], None]] = {}

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        hook = self.hooks.get(len(self.sleeps))
        if hook:
            hook()

    def at_sleep(self, number: int, action: Callable[[], None]) -> None:
        """Run `action` during the `number`-th sleep (1-based)."""
        self.hooks[number] = action


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class LocalApi:
    """API Gateway in front of the adapter: stage prefix, key (or SigV4) check, request log."""

    app: Callable
    auth: str = "apiKey"
    requests: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, environ: dict, start_response: Callable) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        self.requests.append({"method": environ["REQUEST_METHOD"], "path": path, "headers": headers})
        if self.auth == "apiKey":
            allowed = headers.get("x-api-key") == API_KEY_VALUE
        else:
            authorization = headers.get("authorization", "")
            allowed = (
                authorization.startswith("AWS4-HMAC-SHA256 ") and f"/{REGION}/execute-api/aws4_request" in authorization
            )
        if not path.startswith("/v1/") or not allowed:
            start_response("403 Forbidden", [("content-type", "application/json")])
            return [json.dumps({"message": "Forbidden"}).encode()]
        environ = {**environ, "PATH_INFO": path[len("/v1") :]}
        return self.app(environ, start_response)


@dataclass
class Cli:
    """Runs `dreambooth ...` in-process; returns (exit code, stdout, stderr)."""

    session: Any
    clock: Clock
    capsys: Any
    url: str
    api: LocalApi

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = cli.main(list(argv), session=self.session, clock=self.clock)
        out, err = self.capsys.readouterr()
        # The API handler runs in this process (server thread) and prints its metrics (EMF) to stdout.
        out = "".join(line for line in out.splitlines(keepends=True) if not line.startswith('{"_aws"'))
        return code, out, err

    def json(self, *argv: str) -> tuple[int, Any, str]:
        code, out, err = self("--json", *argv)
        return code, json.loads(out), err


def create_stack(outputs: dict[str, str], name: str = STACK) -> None:
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    boto3.client("cloudformation", region_name=REGION).create_stack(StackName=name, TemplateBody=json.dumps(template))


def api_key_id() -> str:
    key = boto3.client("apigateway", region_name=REGION).create_api_key(
        name="dreambooth", value=API_KEY_VALUE, enabled=True
    )
    return key["id"]


def _serve(app: Callable) -> tuple[WSGIServer, threading.Thread, str]:
    server = make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    return server, thread, f"http://127.0.0.1:{server.server_port}/v1/"


def _cli(harness, capsys, auth: str, outputs: Callable[[str], dict[str, str]]):  # noqa: F811
    api = LocalApi(harness.api.wsgi_app, auth=auth)
    server, thread, url = _serve(api)
    try:
        create_stack(outputs(url))
        yield Cli(boto3.Session(region_name=REGION), Clock(), capsys, url, api)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def run(harness, capsys):  # noqa: F811
    """The CLI against a deployed stack with API key auth (the default)."""
    yield from _cli(
        harness, capsys, "apiKey", lambda url: {"BucketName": BUCKET, "ApiUrl": url, "ApiKeyId": api_key_id()}
    )


@pytest.fixture
def run_iam(harness, capsys):  # noqa: F811
    """The CLI against a deployed stack with apiAuth=iam (no ApiKeyId output)."""
    yield from _cli(harness, capsys, "iam", lambda url: {"BucketName": BUCKET, "ApiUrl": url})


@pytest.fixture
def sigint_from_a_terminal():
    """SIGINT raising KeyboardInterrupt, as in a program started from a terminal, however pytest was
    started: a process started in the background (`nohup ... &`, CI runners) inherits SIGINT ignored,
    and the CLI keeps whatever disposition it finds. Restored afterwards."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def write_image(path: Path, size: tuple[int, int] = (600, 800), fmt: str = "JPEG", color=(120, 60, 30)) -> Path:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt)
    path.write_bytes(buffer.getvalue())
    return path


@pytest.fixture
def photos(tmp_path) -> Path:
    """A good dataset folder: three photos, and a .DS_Store the pipeline would skip."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        write_image(folder / f"dog{i}.jpg", color=(40 * i, 90, 150))
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    return folder


def bucket_keys(prefix: str = "") -> list[str]:
    answer = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for o in answer.get("Contents", [])]


def put_order(session: Any) -> list[str]:
    """Keys in the order the session's S3 clients write them (recorded at botocore's boundary).

    Uploads and puts are recorded as the key, server-side copies as "copy <key>", deletes as
    "delete <key>" (one per key of a DeleteObjects call).
    """
    order: list[str] = []
    events = session.events
    events.register("before-parameter-build.s3.PutObject", lambda params, **_: order.append(params["Key"]))
    events.register("before-parameter-build.s3.CreateMultipartUpload", lambda params, **_: order.append(params["Key"]))
    events.register("before-parameter-build.s3.CopyObject", lambda params, **_: order.append("copy " + params["Key"]))
    events.register(
        "before-parameter-build.s3.DeleteObject", lambda params, **_: order.append("delete " + params["Key"])
    )
    events.register(
        "before-parameter-build.s3.DeleteObjects",
        lambda params, **_: order.extend("delete " + o["Key"] for o in params["Delete"]["Objects"]),
    )
    return order


def sole(items: list, what: str = "item") -> Any:
    assert len(items) == 1, f"expected one {what}, got {items}"
    return items[0]
