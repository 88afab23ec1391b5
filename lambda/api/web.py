"""The web page: plain HTML, CSS and JavaScript in web/ beside this module, served as they are.

No build step: the files ship inside the API function's asset. They are read on the first request
that needs them (not at import, which would lengthen every cold start of the API function) and
kept for the life of the container. The page holds no secret: the user types the API key into it
and every call it makes sends that key, so these three routes need none (see openapi.json).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

WEB_DIR = Path(__file__).with_name("web")
AUTH_PLACEHOLDER = "{{API_AUTH}}"

# The page's script and style come from this origin only; no inline script or style. Images are
# presigned S3 URLs (https://<bucket>.s3[.<region>].amazonaws.com/...); fetch() goes to this API only.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src https://*.amazonaws.com",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
])


@dataclass(frozen=True)
class Asset:
    file: str
    content_type: str


# Route (API Gateway resource path) -> file in web/. Only these files are ever served.
ASSETS = {
    "/": Asset("index.html", "text/html; charset=utf-8"),
    "/web/app.js": Asset("app.js", "text/javascript; charset=utf-8"),
    "/web/app.css": Asset("app.css", "text/css; charset=utf-8"),
}


class WebPage:
    """Serves ASSETS from `directory`; the page learns the API's auth mode from its <html> tag."""

    def __init__(self, api_auth: str, directory: Path = WEB_DIR):
        self._api_auth = api_auth
        self._directory = directory
        self._cache: dict[str, str] = {}

    def body(self, route: str) -> str:
        if route not in self._cache:
            text = (self._directory / ASSETS[route].file).read_text(encoding="utf-8")
            self._cache[route] = text.replace(AUTH_PLACEHOLDER, self._api_auth) if route == "/" else text
        return self._cache[route]

    @staticmethod
    def content_type(route: str) -> str:
        return ASSETS[route].content_type

    @staticmethod
    def headers(route: str) -> dict[str, str]:
        headers = {
            "X-Content-Type-Options": "nosniff",
            # Small files: revalidate, so that a new deployment's page shows at once.
            "Cache-Control": "no-cache",
        }
        if route == "/":
            headers.update({
                "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                # Image URLs carry their signature in the query; the page's own URL carries nothing,
                # but nothing about it needs to leave either.
                "Referrer-Policy": "no-referrer",
                "X-Frame-Options": "DENY",
            })
        return headers
