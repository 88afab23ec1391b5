"""Offline rehearsal of the whole flow, with no AWS account: the main job's offline default.

    python -m scripts.rehearse [--json] [--out DIR] [--training-seconds S] [--endpoint-seconds S]

1. synthesizes the app (cdk-nag included), with short waits for the rehearsal;
2. creates the stack's resources on the emulator (moto) from that template, with the test
   harness (tests/harness: PipelineHarness, SageMakerSimulator);
3. uploads a sample dataset (photos drawn with Pillow at run time, no user data) under
   datasets/rehearsal-sample/, each upload followed by the event S3 would send;
4. waits while the real training and deployment state machines run with the real Lambda
   handlers;
5. calls the real API handler: GET /status, POST /generations, GET /generations/{id};
6. saves the generated images (fetched through their presigned URLs) and the timeline into a
   new folder rehearsal-out/<UTC time>/ (nothing existing is ever overwritten);
7. prints the timeline and a summary.

SageMaker is emulated: no training runs, no model is loaded, and the "generated" images are
placeholders drawn by the simulator. moto stands in for S3, DynamoDB, Step Functions, Lambda,
SNS and EventBridge. Exit status 0 when the flow ends with a live model and succeeded images.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Sequence
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "rehearsal-out"
DATASET = "rehearsal-sample"
SAMPLE_COUNT = 4
INSTANCE_PROMPT = "a photo of sks rehearsal toy"
GENERATION = {"prompt": f"{INSTANCE_PROMPT} on a beach at sunset", "num_images": 2, "seed": 42}
# Short waits so the rehearsal takes seconds; a deployed stack uses cdk.json's values.
REHEARSAL_CONTEXT = {"quietWindowSeconds": 2, "endpointPollSeconds": 1}
# No real credentials are ever used: every AWS call of the rehearsal goes to the emulator.
EMULATOR_ENV = {
    "AWS_ACCESS_KEY_ID": "rehearsal", "AWS_SECRET_ACCESS_KEY": "rehearsal", "AWS_SESSION_TOKEN": "rehearsal",
    "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true", "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
}
EMULATED = ("SageMaker is emulated (tests/harness/sagemaker_sim.py): no training job ran and no model "
            "was loaded; the images are placeholders drawn by the simulator, not model output.")


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
    from PIL import Image, ImageDraw, ImageFont

    photos = {}
    font = ImageFont.load_default(size=28)
    for index in range(count):
        image = Image.new("RGB", (512, 512), (40 + 50 * index, 120, 200 - 40 * index))
        draw = ImageDraw.Draw(image)
        draw.ellipse((96 + 20 * index, 140, 416 - 10 * index, 420), fill=(230, 190, 60), outline=(20, 20, 20), width=6)
        draw.rectangle((180, 60 + 10 * index, 330, 150), fill=(200, 60, 60))
        draw.text((20, 20), f"rehearsal sample {index + 1}", fill=(255, 255, 255), font=font)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
        photos[f"sample{index + 1}.jpg"] = buffer.getvalue()
    return photos


def new_out_dir(root: Path, now: Optional[datetime] = None) -> Path:
    """A folder that did not exist before: rehearsal-out/<UTC time>[-n]/."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    root.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):
        candidate = root / (stamp if attempt == 1 else f"{stamp}-{attempt}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise RuntimeError(f"no free folder name under {root}")


def _write_new(path: Path, data: bytes) -> Path:
    with open(path, "xb") as handle:  # "x": never overwrite anything
        handle.write(data)
    return path


def run(out_root: Path = DEFAULT_OUT, *, training_s: float = 2.0, endpoint_s: float = 2.0,
        synthesized: Any = None, timeout_s: Optional[float] = None) -> Rehearsal:
    """Run the whole rehearsal in this process and return what happened (nothing printed)."""
    timeout_s = timeout_s or 120 + training_s + 2 * endpoint_s
    import requests

    from tests.harness import PipelineHarness, SageMakerSimulator, synthesize

    problems: list[str] = []
    with mock.patch.dict(os.environ, EMULATOR_ENV), tempfile.TemporaryDirectory(prefix="rehearsal-synth-") as scratch:
        os.environ.pop("AWS_PROFILE", None)  # restored when the patch ends
        synth_started = time.monotonic()
        synthesized = synthesized or synthesize(REHEARSAL_CONTEXT, outdir=Path(scratch))  # removed afterwards
        synth_s = time.monotonic() - synth_started
        simulator = SageMakerSimulator(training_s=training_s, endpoint_s=endpoint_s)
        out_dir = new_out_dir(out_root)
        saved: list[Path] = []
        model_id = generation = None
        with PipelineHarness(synthesized=synthesized, simulator=simulator) as h:
            h.record("rehearsal", f"stack {synthesized.stack_name} synthesized in {synth_s:.1f}s with the rehearsal's "
                                  f"short waits ({len(synthesized.template['Resources'])} resources), created on the "
                                  "emulator")
            photos = sample_photos()
            info = json.dumps({"instance_prompt": INSTANCE_PROMPT}).encode()
            h.upload_dataset(DATASET, {**photos, "dataset_info.json": info})
            try:
                h.wait_until_idle(timeout_s)
            except TimeoutError as error:
                problems.append(f"the pipeline did not settle: {error}")

            for name, runs in (("training", h.training_runs()), ("deployment", h.deploy_runs())):
                if not runs or runs[-1].status != "SUCCEEDED":
                    status = runs[-1].status if runs else "never started"
                    problems.append(f"the {name} state machine did not succeed ({status})")
            live = h.live_pointer()
            model_id = live.get("liveModelId") if live else None
            if not model_id:
                problems.append("no model went live")

            endpoint = h.api("GET", "/status").json().get("endpoint", {}).get("state")
            h.record("api", f"GET /status: endpoint {endpoint}, live model {model_id}")
            created = h.api("POST", "/generations", GENERATION)
            if created.status not in (200, 202):
                problems.append(f"POST /generations answered {created.status}: {created.text}")
            else:
                generation_id = created.json()["id"]
                try:
                    h.wait_until_idle(timeout_s)
                except TimeoutError as error:
                    problems.append(f"the worker did not finish: {error}")
                generation = h.api("GET", f"/generations/{generation_id}").json()
                h.record("api", f"GET /generations/{{id}}: {len(generation.get('images', []))} presigned image URLs")
                if generation.get("status") != "succeeded":
                    problems.append(f"the generation ended {generation.get('status')}: {generation.get('error')}")
                for index, image in enumerate(generation.get("images", [])):
                    fetched = requests.get(image["url"], timeout=10)  # the presigned URL, served by moto
                    if fetched.status_code != 200:
                        problems.append(f"image {index} URL answered {fetched.status_code}")
                        continue
                    saved.append(_write_new(out_dir / f"generation-{index}-seed{image['seed']}.jpg", fetched.content))
            timeline = h.timeline()

    start = timeline[0][0] if timeline else datetime.now(timezone.utc)
    entries = [{"t": round((when - start).total_seconds(), 3), "at": when.isoformat(timespec="milliseconds"),
                "component": component, "what": what} for when, component, what in timeline]
    total_s = entries[-1]["t"] if entries else 0.0
    summary = [
        f"Rehearsal {'succeeded' if not problems else 'FAILED'}: "
        f"upload -> validate -> train -> deploy -> POST /generations -> images, in {total_s:.1f}s.",
        "Real: the synthesized template (cdk-nag checked), both state machines as synthesized, every Lambda "
        "handler, the API handler and worker.",
        "Emulated: S3, DynamoDB, Step Functions, Lambda, SNS, EventBridge (moto, in this process); "
        "API Gateway's proxy event (no auth/throttling).",
        EMULATED,
        f"Durations shortened for the rehearsal: quiet window {REHEARSAL_CONTEXT['quietWindowSeconds']}s "
        f"(deployed: cdk.json's quietWindowSeconds), simulated training {training_s:g}s and endpoint "
        f"{endpoint_s:g}s (real: tens of minutes).",
    ]
    if model_id:
        summary.append(f"Live model: {model_id}.")
    summary.append(f"Saved: {len(saved)} placeholder image(s) and the timeline in {_shown(out_dir)}/.")
    summary.extend(f"Problem: {p}" for p in problems)
    result = Rehearsal(ok=not problems, out_dir=out_dir, timeline=entries, summary=summary, model_id=model_id,
                       generation=generation, saved=saved, problems=problems)
    _write_new(out_dir / "timeline.json", json.dumps({"timeline": entries, "summary": summary}, indent=1).encode())
    _write_new(out_dir / "timeline.txt", render_text(result).encode())
    return result


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
        prog="python -m scripts.rehearse", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Examples:\n  .venv/bin/python -m scripts.rehearse\n  .venv/bin/python -m scripts.rehearse --json "
               "--out /tmp/rehearsal\n  .venv/bin/python -m scripts.rehearse --training-seconds 5")
    parser.add_argument("--json", action="store_true", help="print the timeline and summary as JSON")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the run's subfolder (default: rehearsal-out/)")
    parser.add_argument("--training-seconds", type=float, default=2.0, help="simulated training duration")
    parser.add_argument("--endpoint-seconds", type=float, default=2.0, help="simulated endpoint create/update duration")
    args = parser.parse_args(argv)
    if not (0 <= args.training_seconds <= 600 and 0 <= args.endpoint_seconds <= 600):
        parser.error("--training-seconds and --endpoint-seconds must be between 0 and 600")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} exists and is not a folder")
    if not args.json:
        print("Offline rehearsal: synthesizing, then running the whole flow on the emulator "
              "(moto + simulated SageMaker, no AWS account; about a minute)...", flush=True)
    result = run(args.out, training_s=args.training_seconds, endpoint_s=args.endpoint_seconds)
    if args.json:
        print(json.dumps({"ok": result.ok, "out_dir": str(result.out_dir), "timeline": result.timeline,
                          "summary": result.summary}, indent=1))
    else:
        print(render_text(result), end="")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
