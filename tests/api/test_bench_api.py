"""The benchmark command runs and prints its figures (the figures themselves are not asserted:
performance targets live in scripts/bench_api.py, not in timed tests)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT


def test_benchmark_prints_overhead_and_cold_import_ratios():
    result = subprocess.run(
        [sys.executable, "-m", "scripts.bench_api", "--requests", "30", "--imports", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for route in ("baseline: bare boto3 invoke_endpoint_async", "POST /generations", "GET /generations/{id}"):
        assert re.search(re.escape(route) + r"\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+", out), out
    # Both paths per generation, in the same run: the real-time one from git, the asynchronous one
    for line in (
        "real-time (cd41dee): POST",
        "real-time (cd41dee): worker",
        "real-time (cd41dee): together",
        "asynchronous (this code): POST",
        "asynchronous (this code): result notice",
        "asynchronous (this code): together",
    ):
        assert re.search(re.escape(line) + r"\s+[\d.]+\s+[\d.]+", out), out
    assert re.search(
        r"async request \+ result p50 [\d.]+ ms \(target <= 10.0 ms\): (met|NOT met); real-time path "
        r"[\d.]+ ms",
        out,
    ), out
    assert re.search(r"ratio handler / baseline\s+[\d.]+\s+[\d.]+", out), out
    assert re.search(r"overhead p50 [\d.]+ ms \(target <= 5.0 ms\): (met|NOT met)", out), out
