"""Upload progress in bytes: a bar redrawn in place on a terminal, one line per file otherwise."""

from __future__ import annotations

import threading
from typing import TextIO

BAR_WIDTH = 30


def _mb(count: int) -> str:
    if count < 1_048_576:
        return f"{count / 1024:.0f} KB"
    return f"{count / 1_048_576:.1f} MB"


class ByteProgress:
    """Called by boto3's transfer callbacks (from its worker threads) with the bytes just sent."""

    def __init__(self, total_bytes: int, files: int, stream: TextIO, *, tty: bool):
        self.total, self.files, self.stream, self.tty = max(total_bytes, 1), files, stream, tty
        self.sent = 0
        self.done_files = 0
        self._per_file: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, name: str, sent: int) -> None:
        with self._lock:
            self.sent += sent
            self._per_file[name] = self._per_file.get(name, 0) + sent
            if self.tty:
                filled = int(BAR_WIDTH * min(self.sent, self.total) / self.total)
                self.stream.write(f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] "
                                  f"{100 * min(self.sent, self.total) // self.total:3d}%  "
                                  f"{_mb(self.sent)} / {_mb(self.total)}  {name[:40]:<40}")
                self.stream.flush()

    def file_done(self, name: str) -> None:
        with self._lock:
            self.done_files += 1
            if not self.tty:
                self.stream.write(f"uploaded {self.done_files}/{self.files} {name} "
                                  f"({_mb(self._per_file.get(name, 0))}; {_mb(self.sent)} of {_mb(self.total)})\n")
                self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
