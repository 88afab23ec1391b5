"""Offline rehearsal of the whole flow, with no AWS account: the main job's offline default.

    python -m scripts.rehearse [--json] [--out DIR] [--training-seconds S] [--endpoint-seconds S]

1. synthesizes the app (cdk-nag included), with short waits for the rehearsal;
2. creates the stack's resources on the emulator (moto) from that template, with the test
   harness (emulator/: PipelineHarness, SageMakerSimulator);
3. uploads a sample dataset (photos drawn with Pillow at run time, no user data) under
   datasets/rehearsal-sample/, each upload followed by the event S3 would send;
4. waits while the real training and deployment state machines run with the real Lambda
   handlers;
5. calls the real API handler: GET /status, GET /models, POST /generations, GET /generations/{id};
6. saves the generated images (fetched through their presigned URLs), the report and the timeline
   into a new folder rehearsal-out/<UTC time>/ (nothing existing is ever overwritten);
7. prints the timeline and a summary.

Steps 3-6 are the acceptance flow (scripts/acceptance.py, `make acceptance`) on its emulator
backend with this small plan: one program, two backends.

SageMaker is emulated: no training runs, no model is loaded, and the "generated" images are
placeholders drawn by the simulator. moto stands in for S3, DynamoDB, Step Functions, Lambda,
SNS and EventBridge. Exit status 0 when the flow ends with a live model and succeeded images.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Sequence

from scripts import acceptance
from stacks.config import TrainingConfig

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "rehearsal-out"
DATASET = "rehearsal-sample"
SAMPLE_COUNT = 4
INSTANCE_PROMPT = "a photo of sks rehearsal toy"
GENERATION = {"prompt": f"{INSTANCE_PROMPT} on a beach at sunset", "num_images": 2, "seed": 42}
# Short waits so the rehearsal takes seconds; a deployed stack uses the configured values.
REHEARSAL_CONTEXT = acceptance.EMULATOR_CONTEXT
EMULATED = (
    "SageMaker is emulated (emulator/sagemaker_sim.py): no training job ran and no model "
    "was loaded; the images are placeholders drawn by the simulator, not model output."
)


@dataclass
class Rehearsal:
    """What one rehearsal did and produced."""

    ok: bool
    out_dir: Path
    timeline: list[dict[str, Any]]
    summary: list[str]
    model_id: Optional[str] = None
    generation: Optional[dict[str, Any]] = None
    saved: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def sample_photos(count: int = SAMPLE_COUNT) -> dict[str, bytes]:
    """A few 512x512 JPEGs drawn here (shapes and a label), so no user data is ever needed."""
    return acceptance.draw_sample_photos(count, label="rehearsal sample")


new_out_dir = acceptance.new_out_dir


def run(
    out_root: Path = DEFAULT_OUT,
    *,
    training_s: float = 2.0,
    endpoint_s: float = 2.0,
    synthesized: Any = None,
    timeout_s: Optional[float] = None,
) -> Rehearsal:
    """Run the rehearsal (the acceptance flow on the emulator, scripts/acceptance.py) in this process."""
    timeout_s = timeout_s or 120 + training_s + 2 * endpoint_s
    out_dir = new_out_dir(out_root)
    plan = acceptance.Plan(
        dataset=DATASET,
        source_bucket=None,
        prompts=(GENERATION["prompt"],),
        num_images=GENERATION["num_images"],
        seed=GENERATION["seed"],
        instance_prompt=INSTANCE_PROMPT,
    )
    photos = {**sample_photos(), "dataset_info.json": json.dumps({"instance_prompt": INSTANCE_PROMPT}).encode()}
    with acceptance.emulator(training_s=training_s, endpoint_s=endpoint_s, synthesized=synthesized) as backend:
        report = acceptance.run_flow(backend, plan, out_dir, photos=photos, poll_s=0.5, training_timeout_s=timeout_s)
        timeline = backend.harness.timeline()

    start = timeline[0][0] if timeline else datetime.now(timezone.utc)
    entries = [
        {
            "t": round((when - start).total_seconds(), 3),
            "at": when.isoformat(timespec="milliseconds"),
            "component": component,
            "what": what,
        }
        for when, component, what in timeline
    ]
    total_s = entries[-1]["t"] if entries else 0.0
    problems = list(report.problems)
    saved = [out_dir / name for image in report.images for name in image["files"]]
    summary = [
        f"Rehearsal {'succeeded' if not problems else 'FAILED'}: "
        f"upload -> validate -> train -> deploy -> POST /generations -> images, in {total_s:.1f}s.",
        "Real: the synthesized template (cdk-nag checked), both state machines as synthesized, every Lambda "
        "handler, the API handler, the result function and the dispatcher, and the acceptance flow "
        "(scripts/acceptance.py) that `make acceptance` runs against AWS.",
        "Emulated: S3, DynamoDB, Step Functions, Lambda, SNS, EventBridge (moto, in this process); "
        "API Gateway's proxy event (no auth/throttling).",
        EMULATED,
        f"Durations shortened for the rehearsal: quiet window {REHEARSAL_CONTEXT['quietWindowSeconds']}s "
        f"(deployed: quietWindowSeconds, default {TrainingConfig.quiet_window_s}s), simulated training {training_s:g}s and endpoint "
        f"{endpoint_s:g}s (real: tens of minutes).",
    ]
    if report.model_id:
        summary.append(f"Live model: {report.model_id}.")
    summary.append(f"Saved: {len(saved)} placeholder image(s), the report and the timeline in {_shown(out_dir)}/.")
    summary.extend(f"Problem: {p}" for p in problems)
    result = Rehearsal(
        ok=not problems,
        out_dir=out_dir,
        timeline=entries,
        summary=summary,
        model_id=report.model_id,
        generation=report.images[0] if report.images else None,
        saved=saved,
        problems=problems,
    )
    _write_new(out_dir / "timeline.json", json.dumps({"timeline": entries, "summary": summary}, indent=1).encode())
    _write_new(out_dir / "timeline.txt", render_text(result).encode())
    return result


_write_new = acceptance._write_new


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def render_text(result: Rehearsal) -> str:
    lines = ["Timeline (seconds since the stack was created on the emulator; SageMaker simulated):"]
    width = max((len(e["component"]) for e in result.timeline), default=10)
    for entry in result.timeline:
        lines.append(f"  +{entry['t']:7.2f}s  {entry['component']:<{width}}  {entry['what']}")
    lines.append("")
    lines.extend(result.summary)
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.rehearse",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Examples:\n  .venv/bin/python -m scripts.rehearse\n  .venv/bin/python -m scripts.rehearse --json "
        "--out /tmp/rehearsal\n  .venv/bin/python -m scripts.rehearse --training-seconds 5",
    )
    parser.add_argument("--json", action="store_true", help="print the timeline and summary as JSON")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="folder for the run's subfolder (default: rehearsal-out/)"
    )
    parser.add_argument("--training-seconds", type=float, default=2.0, help="simulated training duration")
    parser.add_argument("--endpoint-seconds", type=float, default=2.0, help="simulated endpoint create/update duration")
    args = parser.parse_args(argv)
    if not (0 <= args.training_seconds <= 600 and 0 <= args.endpoint_seconds <= 600):
        parser.error("--training-seconds and --endpoint-seconds must be between 0 and 600")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} exists and is not a folder")
    if not args.json:
        print(
            "Offline rehearsal: synthesizing, then running the whole flow on the emulator "
            "(moto + simulated SageMaker, no AWS account; about a minute)...",
            flush=True,
        )
    result = run(args.out, training_s=args.training_seconds, endpoint_s=args.endpoint_seconds)
    if args.json:
        print(
            json.dumps(
                {
                    "ok": result.ok,
                    "out_dir": str(result.out_dir),
                    "timeline": result.timeline,
                    "summary": result.summary,
                },
                indent=1,
            )
        )
    else:
        print(render_text(result), end="")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
