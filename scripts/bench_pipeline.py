"""Benchmark: what the pipeline adds on top of SageMaker's own work, on the offline harness.

    python -m scripts.bench_pipeline [--training-s 20] [--endpoint-s 30] [--quiet-window-s 10]
                                     [--poll-s <endpointPollSeconds' default>] [--runs 1]

Runs the synthesized state machines on moto (emulator/) with simulated SageMaker durations
(SageMaker's endpoint state-change events delivered, unless --lose-endpoint-events),
uploads a small dataset, and prints for each run:
- added wall time: from the last upload to the model being live, minus the quiet window, the
  training time and the endpoint creation time (target: at most 15 s);
- state transitions: states entered by the training and deploy executions (target: at most 60);
and, because transitions grow with the endpoint's creation time, the count this configuration
would give for longer (real) endpoint creation times.

Time is the harness's clock (emulator/clock.py): what every component reads, so the figures
are what AWS would show; the quiet window and the simulated SageMaker durations are skipped rather
than waited for on the wall clock whenever nothing else runs, so a run takes seconds.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from typing import Optional, Sequence

TARGET_ADDED_S = 15.0
TARGET_TRANSITIONS = 60
# States a deploy execution enters per endpoint check (wait, DescribeEndpoint, Choice, count).
STATES_PER_POLL = 4


def one_run(
    training_s: float, endpoint_s: float, quiet_window_s: int, poll_s: int, first: bool, events: bool = True
) -> dict:
    from emulator import PipelineHarness, SageMakerSimulator
    from scripts.acceptance import draw_sample_photos

    context = {"quietWindowSeconds": quiet_window_s, "endpointPollSeconds": poll_s}
    simulator = SageMakerSimulator(training_s=training_s, endpoint_s=endpoint_s)
    with PipelineHarness(context=context, simulator=simulator, deliver_endpoint_events=events) as h:
        if not first:  # measure an update: put a first model live, then time the second
            h.upload_dataset("bench", draw_sample_photos(3, label="bench first"))
            h.wait_until_idle(quiet_window_s + training_s + endpoint_s + 120)
            simulator.timeline.clear()
        started = len(h.training_runs()), len(h.deploy_runs())
        h.upload_dataset(
            "bench", {f"second-{name}": photo for name, photo in draw_sample_photos(3, label="bench second").items()}
        )
        last_upload = time.time()
        h.wait_until_idle(quiet_window_s + training_s + endpoint_s + 120)
        (train,) = h.training_runs()[started[0] :]
        (deploy,) = h.deploy_runs()[started[1] :]
        assert (train.status, deploy.status) == ("SUCCEEDED", "SUCCEEDED"), (train.error, deploy.error)
        # Live once the deploy execution has pointed the registry at it and notified (its end).
        live_after_s = deploy.stopped.timestamp() - last_upload
        added = live_after_s - quiet_window_s - training_s - endpoint_s
        polls = deploy.entered_states.count("CheckEndpoint")
        return {
            "kind": "create" if first else "update",
            "live_after_s": round(live_after_s, 2),
            "added_s": round(added, 2),
            "transitions": train.transitions + deploy.transitions,
            "training_transitions": train.transitions,
            "deploy_transitions": deploy.transitions,
            "polls": polls,
        }


def projected_transitions(measured: dict, endpoint_s: float, poll_s: int, events: bool) -> int:
    """Transitions for another endpoint creation time: only the number of checks changes.

    With state-change events: one check per poll interval that passes, plus the one the event
    triggers. Without: one per poll interval, rounded up.
    """
    fixed = measured["transitions"] - STATES_PER_POLL * measured["polls"]
    checks = math.floor(endpoint_s / poll_s) + 1 if events else max(1, math.ceil(endpoint_s / poll_s))
    return fixed + STATES_PER_POLL * checks


def main(argv: Optional[Sequence[str]] = None) -> int:
    from stacks.config import ServingConfig

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--training-s", type=float, default=20.0, help="simulated training job duration")
    parser.add_argument("--endpoint-s", type=float, default=30.0, help="simulated endpoint creation/update duration")
    parser.add_argument("--quiet-window-s", type=int, default=10, help="quiet window (quietWindowSeconds)")
    parser.add_argument(
        "--poll-s",
        type=int,
        default=ServingConfig.endpoint_poll_s,
        help=f"DescribeEndpoint interval (endpointPollSeconds; default {ServingConfig.endpoint_poll_s})",
    )
    parser.add_argument("--runs", type=int, default=1, help="runs of each kind (create, update)")
    parser.add_argument(
        "--lose-endpoint-events",
        action="store_true",
        help="drop SageMaker's endpoint state-change events (polling alone)",
    )
    args = parser.parse_args(argv)

    events = not args.lose_endpoint_events
    print(
        f"Simulated SageMaker: training {args.training_s:g} s, endpoint {args.endpoint_s:g} s; "
        f"quiet window {args.quiet_window_s} s; endpoint checked on its state-change event "
        f"{'(delivered)' if events else '(LOST)'} or every {args.poll_s} s"
    )
    results = []
    for first in (True, False):
        for _ in range(args.runs):
            result = one_run(args.training_s, args.endpoint_s, args.quiet_window_s, args.poll_s, first, events)
            results.append(result)
            print(
                f"  {result['kind']:6}  live {result['live_after_s']:7.2f} s after the last upload;  "
                f"added beyond quiet window + SageMaker: {result['added_s']:6.2f} s;  "
                f"state transitions: {result['transitions']} "
                f"(training {result['training_transitions']}, deploy {result['deploy_transitions']}, "
                f"{result['polls']} endpoint checks)"
            )
    worst_added = max(r["added_s"] for r in results)
    worst_transitions = max(r["transitions"] for r in results)
    print(
        f"Added wall time: max {worst_added:.2f} s, mean {statistics.mean(r['added_s'] for r in results):.2f} s "
        f"(target <= {TARGET_ADDED_S:g} s): {'met' if worst_added <= TARGET_ADDED_S else 'NOT met'}"
    )
    print(
        f"State transitions per run: max {worst_transitions} (target <= {TARGET_TRANSITIONS}): "
        f"{'met' if worst_transitions <= TARGET_TRANSITIONS else 'NOT met'}"
    )
    print(
        f"Projected transitions per run for longer endpoint creation times (poll {args.poll_s} s, "
        f"events {'delivered' if events else 'lost'}):"
    )
    worst = max(results, key=lambda r: r["transitions"])
    for endpoint_s in (60, 300, 600, 900):
        count = projected_transitions(worst, endpoint_s, args.poll_s, events)
        print(
            f"  endpoint {endpoint_s:4d} s -> {count} transitions "
            f"({'within' if count <= TARGET_TRANSITIONS else 'over'} the target)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
