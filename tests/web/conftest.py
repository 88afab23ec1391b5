"""Fixtures for the web page tests: the real API handler behind a local HTTP server, and Debian's
Chromium driven by Playwright.

- The server (127.0.0.1, a free port, a thread) turns each HTTP request into the API Gateway
  proxy event of the real handler (emulator/api_gateway.py's wsgi_app), against moto through the
  tests/api fixtures. Like the adapter, it does not check the key: that is API Gateway's job
  (asserted on the template in tests/api/test_api_infra.py); it records the key each request
  carried so that tests can assert the page sends it.
- Image URLs are presigned S3 URLs (https://<bucket>.s3.amazonaws.com/...). The browser's
  requests for them are answered by fetching the very URL from moto's S3 (signature checked by
  moto), since this machine has no network: Playwright's request routing stands in for S3's host.
- Chromium is Debian's /usr/bin/chromium (`make test` installs it); Playwright never downloads a
  browser. A missing Chromium fails the tests, it does not skip them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import requests

from tests.api.conftest import api_module, dispatch_module, harness, results_module  # noqa: F401 (fixtures reused)

CHROMIUM = Path("/usr/bin/chromium")
# As the machine notes give them: without the background-networking flags Chromium keeps trying
# to reach Google's hosts, which this machine's closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# The page shows local time (UTC on hover): a time zone other than UTC shows that it converts.
LOCALE, TIME_ZONE = "en-US", "Europe/Paris"
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"  # gitignored
S3_URLS = "https://*.amazonaws.com/**"
STAGE = "/prod"  # the stage emulator/api_gateway.py writes into requestContext.path


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass


@dataclass
class LocalApi:
    """The real handler behind http://127.0.0.1:<port>/prod/, as API Gateway serves a stage.

    The stage prefix is taken off the path before the handler sees it (the adapter puts it back in
    requestContext.path, as API Gateway does), so the page is tested under a prefix as deployed.
    """

    app: Callable
    seen: list[tuple[str, str, Optional[str]]] = field(default_factory=list)  # method, path, x-api-key

    def __post_init__(self) -> None:
        self.server: WSGIServer = make_server("127.0.0.1", 0, self._staged, handler_class=_QuietHandler)
        self.url = f"http://127.0.0.1:{self.server.server_port}{STAGE}/"
        # shutdown() waits for serve_forever's next poll: 0.5 s at its default, each test.
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, name="local-api", daemon=True
        )

    def _staged(self, environ: dict, start_response: Callable) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path != STAGE and not path.startswith(STAGE + "/"):
            # What API Gateway answers outside its stages (MISSING_AUTHENTICATION_TOKEN)
            start_response("403 Forbidden", [("Content-Type", "application/json")])
            return [b'{"error":{"code":"Forbidden","message":"no such stage"}}']
        environ["PATH_INFO"] = path[len(STAGE) :] or "/"
        self.seen.append((environ["REQUEST_METHOD"], environ["PATH_INFO"], environ.get("HTTP_X_API_KEY")))
        return self.app(environ, start_response)

    def __enter__(self) -> "LocalApi":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def data_calls(self) -> list[tuple[str, str, Optional[str]]]:
        return [call for call in self.seen if call[1] != "/" and not call[1].startswith("/web/")]


@pytest.fixture
def local_api(harness) -> Iterator[LocalApi]:  # noqa: F811 (the imported fixture)
    with LocalApi(harness.api.wsgi_app) as server:
        yield server


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), (
        f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium)"
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def serve_s3_from_moto(route) -> None:
    """Answer the browser's request to S3 from moto's S3 (same URL, same signature): presigned image
    URLs, and the presigned POSTs of a dataset's photos. The CORS header S3 sends (the stack's bucket
    has a rule for the page's origin, asserted in tests/api/test_api_datasets.py) is added here,
    since moto's answer to the forwarded request has none."""
    request = route.request
    if request.method == "POST":  # a presigned POST of a photo (multipart form), sent on to moto's S3
        answer = requests.post(
            request.url,
            data=request.post_data_buffer,
            headers={"content-type": request.headers["content-type"]},
            timeout=10,
        )
    else:
        answer = requests.get(request.url, timeout=5)
    headers = {
        "content-type": answer.headers.get("content-type", "application/octet-stream"),
        # What S3's CORS rule answers for the page's origin (the stack's bucket has it)
        "access-control-allow-origin": request.headers.get("origin", "*"),
    }
    if "content-disposition" in answer.headers:
        headers["content-disposition"] = answer.headers["content-disposition"]
    route.fulfill(status=answer.status_code, body=answer.content, headers=headers)


@pytest.fixture
def page(browser):
    """A fresh browser profile (empty localStorage) per test, S3 answered from moto."""
    context = browser.new_context(viewport=VIEWPORT, locale=LOCALE, timezone_id=TIME_ZONE, accept_downloads=True)
    context.route(S3_URLS, serve_s3_from_moto)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # Chromium logs every non-2xx answer as "Failed to load resource"; the tests assert those
    # answers themselves. Anything else (a script error, a CSP refusal) is collected.
    page.on(
        "console",
        lambda message: (
            errors.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.errors = errors  # asserted empty by the tests
    yield page
    context.close()


def screenshot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS / f"{name}.png"


def screenshot(page, name: str) -> Path:
    """The viewport, as a person sees it."""
    path = screenshot_path(name)
    page.screenshot(path=str(path), full_page=False)
    return path
