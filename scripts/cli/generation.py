"""`dreambooth generate`: POST /generations, wait for the images, save them, never overwriting a file.

A 503 with Retry-After (endpoint being created, updated or woken up) is waited out, at most
MAX_RETRY_WAIT_S at a time and never past the timeout, with the API's message shown each time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from scripts.cli.api_client import ApiClient, ApiError, ApiUnreachable
from scripts.cli.follow import Clock, elapsed_text

MAX_RETRY_WAIT_S = 60.0
DEFAULT_RETRY_WAIT_S = 5.0
SERVER_WAIT_S = 20  # the API holds POST /generations this long for the result (capped by apiMaxWaitSeconds)
POLL_S = 2.0
TERMINAL = ("succeeded", "failed")
_RETRYABLE = (429, 503)


class TimedOut(Exception):
    pass


@dataclass
class Saved:
    generation: dict[str, Any]
    paths: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.generation.get("status") == "succeeded"

    def to_dict(self) -> dict[str, Any]:
        images = self.generation.get("images") or []
        return {
            "id": self.generation.get("id"),
            "status": self.generation.get("status"),
            "model_id": self.generation.get("model_id"),
            "prompt": self.generation.get("prompt"),
            "error": self.generation.get("error"),
            "images": [{"path": str(path), "seed": image.get("seed")} for path, image in zip(self.paths, images)],
        }


class Generator:
    def __init__(
        self, client: ApiClient, *, timeout_s: float, clock: Clock, say: Callable[[str], None], poll_s: float = POLL_S
    ):
        self.client, self.timeout_s, self.clock, self.say, self.poll_s = client, timeout_s, clock, say, poll_s
        self.started = clock.monotonic()

    def _remaining(self) -> float:
        return self.timeout_s - (self.clock.monotonic() - self.started)

    def _stamp(self) -> str:
        return f"[{elapsed_text(self.clock.monotonic() - self.started):>7}]"

    def _retry_or_raise(self, error: ApiError) -> None:
        if error.status not in _RETRYABLE:
            raise error
        wait = min(error.retry_after_s if error.retry_after_s is not None else DEFAULT_RETRY_WAIT_S, MAX_RETRY_WAIT_S)
        remaining = self._remaining()
        if remaining <= 0 or wait > remaining:
            raise TimedOut(f"gave up after {elapsed_text(self.clock.monotonic() - self.started)}: {error.message}")
        self.say(f"{self._stamp()} {error.message} (retrying in {wait:g}s)")
        self.clock.sleep(wait)

    def run(self, request: dict[str, Any]) -> dict[str, Any]:
        """The finished generation (succeeded or failed); TimedOut past the timeout."""
        while True:
            try:
                status, body = self.client.create_generation(
                    {**request, "wait": int(max(0, min(SERVER_WAIT_S, self._remaining())))}
                )
                break
            except ApiError as error:
                self._retry_or_raise(error)
        self.say(f"{self._stamp()} generation {body['id']} {_state(body)} on model {body.get('model_id')}")
        last = _state(body)
        while body["status"] not in TERMINAL:
            remaining = self._remaining()
            if remaining <= 0:
                raise TimedOut(
                    f"generation {body['id']} still {body['status']} after "
                    f"{elapsed_text(self.clock.monotonic() - self.started)}; "
                    f"it goes on: GET /generations/{body['id']}"
                )
            self.clock.sleep(min(self.poll_s, remaining))
            try:
                body = self.client.generation(body["id"])
            except ApiError as error:
                self._retry_or_raise(error)
                continue
            except ApiUnreachable as error:
                self.say(f"{self._stamp()} API not reachable ({error}); retrying")
                continue
            if _state(body) != last:
                last = _state(body)
                self.say(f"{self._stamp()} {last}")
        return body


def _state(body: dict[str, Any]) -> str:
    """`queued (starting an instance, usually up to 10 minutes ...)`: the status, with why it waits."""
    reason = body.get("queue_reason")
    return f"{body['status']} ({reason})" if reason else str(body["status"])


def save_images(client: ApiClient, generation: dict[str, Any], out_dir: Path) -> list[Path]:
    """Download every image into out_dir as <i>.jpg; a name already taken gets a -1, -2... suffix."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, image in enumerate(generation.get("images") or []):
        path, handle = _fresh_file(out_dir, str(index), ".jpg")
        try:
            with handle:
                client.download(image["url"], handle)
        except BaseException:
            path.unlink(missing_ok=True)  # only the file this call just created
            raise
        paths.append(path)
    return paths


def _fresh_file(directory: Path, stem: str, suffix: str) -> tuple[Path, Any]:
    """Create a file that did not exist (exclusive create: never truncates someone's file)."""
    for attempt in range(1000):
        path = directory / (f"{stem}{suffix}" if attempt == 0 else f"{stem}-{attempt}{suffix}")
        try:
            return path, path.open("xb")
        except FileExistsError:
            continue
    raise FileExistsError(f"no free file name for {stem}{suffix} in {directory}")
