"""Each in-process Lambda invocation keeps its own Powertools metrics (emulator/lambdas.py)."""

from __future__ import annotations

import threading
from contextlib import ExitStack

from emulator.lambdas import separate_metric_sets


def test_concurrent_invocations_each_flush_only_their_own_metrics():
    from aws_lambda_powertools.metrics import Metrics, MetricUnit

    with ExitStack() as stack:
        separate_metric_sets(stack)
        api, results = Metrics(namespace="harness", service="api"), Metrics(namespace="harness", service="results")
        added, seen = threading.Barrier(2), {}

        def invocation(metrics: Metrics, name: str) -> None:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
            added.wait()  # both have added before either reads
            seen[name] = sorted(metrics.metric_set)

        threads = [
            threading.Thread(target=invocation, args=(api, "GenerationsRequested")),
            threading.Thread(target=invocation, args=(results, "GenerationsSucceeded")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    # As on Lambda, where each function runs in a process of its own
    assert seen == {"GenerationsRequested": ["GenerationsRequested"], "GenerationsSucceeded": ["GenerationsSucceeded"]}
