"""The page's three routes in the real handler: what is served, with which headers, read when."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from emulator.api_gateway import ApiGatewayAdapter
from emulator.lambda_runtime import API_CODE, load
from tests.api.conftest import FUNCTION_ENV

ROUTES = {"/": "text/html", "/web/app.js": "text/javascript", "/web/app.css": "text/css"}


@pytest.fixture(scope="module")
def fresh_handler():
    """A handler imported anew (nothing served yet), as in a new Lambda container."""
    return load(API_CODE, "handler", FUNCTION_ENV)


class Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.script_text = ""
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag in ("script", "style")

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.script_text += data.strip()


def test_files_are_read_on_the_first_request_not_at_import(fresh_handler):
    assert fresh_handler.page._cache == {}
    ApiGatewayAdapter(fresh_handler.lambda_handler).call("GET", "/")
    assert set(fresh_handler.page._cache) == {"/"}


@pytest.mark.parametrize("route, content_type", ROUTES.items())
def test_the_page_files_are_served_as_shipped(fresh_handler, route, content_type):
    answer = ApiGatewayAdapter(fresh_handler.lambda_handler).call("GET", route)
    assert answer.status == 200
    assert answer.headers["Content-Type"] == f"{content_type}; charset=utf-8"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    shipped = (API_CODE / "web" / route.replace("/web/", "").replace("/", "index.html")).read_text()
    # The adapter asks as API Gateway does for stage "prod": requestContext.path is "/prod/"
    assert answer.text == shipped.replace("{{API_AUTH}}", "apiKey").replace("{{BASE}}", "/prod/")


@pytest.mark.parametrize(
    "page_path, base",
    [
        ("/v1/", "/v1/"),
        ("/v1", "/v1/"),
        ("/", "/"),
        ("/api/v1", "/api/v1/"),
        (None, ""),
        ("", ""),
        ("//evil.example/", ""),
        ('/v1/"><script>', ""),
        ("/v1/%2F", ""),
    ],
)
def test_the_page_links_its_files_from_the_folder_it_was_asked_for_by(page_path, base):
    web = load(API_CODE, "web", {})
    assert web.base_path(page_path) == base
    page = web.WebPage("apiKey")
    assert f'<script src="{base}web/app.js" defer></script>' in page.body("/", page_path)


def test_the_page_has_a_strict_content_security_policy_and_no_inline_code(fresh_handler):
    answer = ApiGatewayAdapter(fresh_handler.lambda_handler).call("GET", "/")
    policy = dict(d.strip().split(" ", 1) for d in answer.headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == policy["style-src"] == "'self'"
    # fetch() to this API, and to the data bucket's own regional host for the presigned photo uploads only
    assert policy["connect-src"] == "'self' https://test-data-bucket.s3.us-east-1.amazonaws.com"
    assert policy["img-src"] == "https://*.amazonaws.com blob:"
    assert policy["frame-ancestors"] == "'none'" and answer.headers["X-Frame-Options"] == "DENY"
    assert "unsafe" not in answer.headers["Content-Security-Policy"]
    assert answer.headers["Referrer-Policy"] == "no-referrer"

    markup = Markup()
    markup.feed(answer.text)
    assert markup.script_text == ""  # no inline <script> or <style> body
    for tag, attrs in markup.tags:
        assert "style" not in attrs and not any(name.startswith("on") for name in attrs), (tag, attrs)
    assert ("script", {"src": "/prod/web/app.js", "defer": None}) in markup.tags
    assert ("link", {"rel": "stylesheet", "href": "/prod/web/app.css"}) in markup.tags


def test_every_control_has_a_label():
    markup = Markup()
    markup.feed((API_CODE / "web" / "index.html").read_text())
    labelled = {attrs["for"] for tag, attrs in markup.tags if tag == "label"}
    controls = [attrs for tag, attrs in markup.tags if tag in ("input", "select", "textarea")]
    assert controls and all(c["id"] in labelled for c in controls)


def test_the_page_knows_the_auth_mode():
    iam = load(API_CODE, "handler", {**FUNCTION_ENV, "API_AUTH": "iam"})
    text = ApiGatewayAdapter(iam.lambda_handler).call("GET", "/").text
    assert '<html lang="en" data-api-auth="iam">' in text


def test_a_bad_or_missing_auth_mode_is_a_deployment_error_naming_the_variable():
    settings = load(API_CODE, "settings", {})
    with pytest.raises(settings.SettingsError, match="API_AUTH='basic' is not one of apiKey, iam"):
        settings.Settings.from_environ({**FUNCTION_ENV, "API_AUTH": "basic"})
    # No default of its own: the construct always sets it (apiAuth, stacks/config.py).
    without = {k: v for k, v in FUNCTION_ENV.items() if k != "API_AUTH"}
    with pytest.raises(settings.SettingsError, match="API_AUTH is not set"):
        settings.Settings.from_environ(without)
    assert settings.Settings.from_environ(FUNCTION_ENV).api_auth == "apiKey"


@pytest.mark.parametrize("path", ["/web/index.html", "/web/../handler.py", "/web/", "/index.html"])
def test_nothing_else_is_served(fresh_handler, path):
    answer = ApiGatewayAdapter(fresh_handler.lambda_handler).call("GET", path)
    assert answer.status == 404 and answer.json()["error"]["code"] == "NotFound"
