"""The web page: plain HTML, CSS and JavaScript in web/ beside this module, served as they are.

No build step: the files ship inside the API function's asset. They are read on the first request
that needs them (not at import, which would lengthen every cold start of the API function) and
kept for the life of the container. The page holds no secret: the user types the API key into it
and every call it makes sends that key, so these three routes need none (see openapi.json).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

WEB_DIR = Path(__file__).with_name("web")
AUTH_PLACEHOLDER = "{{API_AUTH}}"
BASE_PLACEHOLDER = "{{BASE}}"
# Path segments of a stage or base-path mapping; anything else falls back to relative links.
_PAGE_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)*/?")


def content_security_policy(upload_origin: str) -> str:
    """The page's script and style come from this origin only; no inline script or style. Images are
    presigned S3 URLs (https://<bucket>.s3[.<region>].amazonaws.com/...) or the photos being
    dropped (blob:); fetch() goes to this API, and to the data bucket's host only: the presigned photo
    uploads, and the images "Download all" puts into one zip file."""
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src https://*.amazonaws.com blob:",
            f"connect-src 'self' {upload_origin}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


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


def base_path(page_path: Optional[str]) -> str:
    """ "/v1/" for a page asked for as "/v1" or "/v1/"; "" (links stay relative) when unknown or odd."""
    if not page_path or not _PAGE_PATH.fullmatch(page_path):
        return ""
    return page_path if page_path.endswith("/") else page_path + "/"


class WebPage:
    """Serves ASSETS from `directory`; the page learns the API's auth mode from its <html> tag."""

    def __init__(self, api_auth: str, directory: Path = WEB_DIR, *, upload_origin: str = ""):
        self._api_auth = api_auth
        self._directory = directory
        self._policy = content_security_policy(upload_origin)
        self._cache: dict[str, str] = {}

    def body(self, route: str, page_path: Optional[str] = None) -> str:
        """The file; for the page, with the auth mode and the absolute folder of its own files.

        `page_path` is the path the browser asked for the page by (API Gateway's
        requestContext.path: "/v1/", or "/v1" when the slash was left off, where relative links
        would point outside the stage).
        """
        if route not in self._cache:
            text = (self._directory / ASSETS[route].file).read_text(encoding="utf-8")
            self._cache[route] = text.replace(AUTH_PLACEHOLDER, self._api_auth) if route == "/" else text
        text = self._cache[route]
        return text.replace(BASE_PLACEHOLDER, base_path(page_path)) if route == "/" else text

    @staticmethod
    def content_type(route: str) -> str:
        return ASSETS[route].content_type

    def headers(self, route: str) -> dict[str, str]:
        headers = {
            "X-Content-Type-Options": "nosniff",
            # Small files: revalidate, so that a new deployment's page shows at once.
            "Cache-Control": "no-cache",
        }
        if route == "/":
            headers.update(
                {
                    "Content-Security-Policy": self._policy,
                    # Image URLs carry their signature in the query; the page's own URL carries nothing,
                    # but nothing about it needs to leave either.
                    "Referrer-Policy": "no-referrer",
                    "X-Frame-Options": "DENY",
                }
            )
        return headers
