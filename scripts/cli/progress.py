"""Upload progress in bytes: a rich progress bar on a terminal, one line per file otherwise.

On a terminal, rich redraws the bar in place and prints every message (`say`) on a line of its own
above it, so a message and the bar never share a line. Without a terminal (a log, CI, a pipe) no
bar is drawn: one line per uploaded file, and messages as plain lines.
"""

from __future__ import annotations

import threading
from typing import Optional, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

FILE_NAME_CHARS = 32


def _mb(count: int) -> str:
    if count < 1_048_576:
        return f"{count / 1024:.0f} KB"
    return f"{count / 1_048_576:.1f} MB"


class ByteProgress:
    """Called by boto3's transfer callbacks (from its worker threads) with the bytes just sent."""

    def __init__(self, total_bytes: int, files: int, stream: TextIO, *, tty: bool, width: Optional[int] = None):
        self.total, self.files, self.stream, self.tty = max(total_bytes, 1), files, stream, tty
        self.sent = 0
        self.done_files = 0
        self._per_file: dict[str, int] = {}
        self._lock = threading.Lock()
        self._bar: Optional[Progress] = None
        self._task: Optional[TaskID] = None
        if tty:
            console = Console(file=stream, force_terminal=True, width=width)
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(binary_units=True),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=False,
            )
            self._task = self._bar.add_task(f"0/{files} files", total=self.total)
            self._bar.start()

    def __call__(self, name: str, sent: int) -> None:
        with self._lock:
            self.sent += sent
            self._per_file[name] = self._per_file.get(name, 0) + sent
            if self._bar is not None:
                self._bar.update(
                    self._task,
                    completed=min(self.sent, self.total),
                    description=f"{self.done_files}/{self.files} {name[:FILE_NAME_CHARS]}",
                )

    def file_done(self, name: str) -> None:
        with self._lock:
            self.done_files += 1
            if self._bar is not None:
                self._bar.update(self._task, description=f"{self.done_files}/{self.files} files")
            else:
                self.stream.write(
                    f"uploaded {self.done_files}/{self.files} {name} "
                    f"({_mb(self._per_file.get(name, 0))}; {_mb(self.sent)} of {_mb(self.total)})\n"
                )
                self.stream.flush()

    def say(self, text: str) -> None:
        """A message while the upload runs: on its own line, above the bar."""
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
