"""The first run on a real account, as one command: `make acceptance` (python -m scripts.acceptance).

    python -m scripts.acceptance [--emulator] [--out DIR] [--destroy] [--timeout S] [-c KEY=VALUE ...]
    python -m scripts.acceptance --destroy-previous [acceptance-out/<run>/report.json]

One flow, two backends:
- with AWS credentials (AwsBackend): deploys the stack if it is not deployed yet (scripts/deploy.py),
  copies AWS's public sample dog photos (s3://jumpstart-cache-prod-<region>/training-datasets/
  dogs_sd_finetuning/) into a new dataset datasets/acceptance-<UTC time>/ of the stack's bucket,
  follows training and deployment through the API (GET /models), generates the three prompts of
  AWS's notebook ("... on the sea", "... with a hat", "... with Donald Trump"), saves the images
  and writes a report (report.md and report.json) with each stage's duration, the SageMaker
  training job and endpoint names and the run's cost from the cost model (scripts/costs.py);
- without credentials (or with --emulator), the same flow on the emulator (EmulatorBackend:
  the synthesized stack on moto with simulated SageMaker, emulator/), and the report says so.
  The offline rehearsal (scripts/rehearse.py, run by `make deploy` without credentials) is this
  flow on the emulator with its own small plan.

`--destroy` then removes what the run created: the endpoint if the run created it (it bills by the
hour), the stack if the run deployed it (`cdk destroy`; the data bucket is retained by the stack).
Never the bucket, the copied photos or the generated images. `--destroy-previous` does the same
later, for an earlier run, from what its report.json recorded (default: the newest report).

What the report is for: the numbers offline tests cannot give (how long a real training and a
real endpoint creation take, what SageMaker named things, what the run cost), and the assumptions
table: every assumption the offline tests rest on (`assumed_texts`), `confirmed`, `contradicted`
or `not observed` from what AWS shows (AwsBackend.observe), `emulated` on the emulator. On AWS the
run also waits for the endpoint to scale in to zero and sends one prompt at zero instances
(`--no-scaling` skips that).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Protocol, Sequence
from unittest import mock

from dreambooth_shared.contract import (
    DEPLOY_MACHINE_SUFFIX,
    PACKAGING_TIMEOUT_S,
    SDK_VERSIONS_LOG_FIELD,
    TRAINING_MACHINE_SUFFIX,
    PackagedLog,
)
from scripts import costs
from stacks.shared.sfn_budget import HISTORY_EVENT_LIMIT

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "acceptance-out"
SAMPLE_PREFIX = "training-datasets/dogs_sd_finetuning/"
SAMPLE_INSTANCE_PROMPT = "a photo of a Doppler dog"  # the sample's own dataset_info.json says so
PROMPT_ENDINGS = ("on the sea", "with a hat", "with Donald Trump")  # AWS's JumpStart notebook
TRAINING_TIMEOUT_S = 4 * 3600
GENERATE_TIMEOUT_S = 1800
TRAINING_JOB_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
ENDPOINT_LOG_GROUP_PREFIX = "/aws/sagemaker/Endpoints/"
"""SageMaker writes an endpoint's container logs to /aws/sagemaker/Endpoints/<endpoint name>."""
# No real credentials are ever used by the emulator backend: every AWS call goes to moto.
EMULATOR_ENV = {
    "AWS_ACCESS_KEY_ID": "emulator",
    "AWS_SECRET_ACCESS_KEY": "emulator",
    "AWS_SESSION_TOKEN": "emulator",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
}
# Short waits on the emulator; a deployed stack uses the configured values.
EMULATOR_CONTEXT = {"quietWindowSeconds": 2, "endpointPollSeconds": 1, "endpointMaxWaitMinutes": 5}
EMULATED_NOTE = (
    "SageMaker is emulated (emulator/sagemaker_sim.py): no training job ran and no model was "
    "loaded; the images are placeholders, and every duration and cost below is the emulator's, "
    "not AWS's. Run with AWS credentials for the real numbers."
)


def sample_source_bucket(region: str) -> str:
    return f"jumpstart-cache-prod-{region}"


@dataclass(frozen=True)
class Plan:
    """What one run does: the dataset it creates, where its photos come from, what it generates."""

    dataset: str
    source_bucket: Optional[str]  # None: the backend's own sample photos (the rehearsal)
    prompts: tuple[str, ...]
    num_images: int = 1
    seed: Optional[int] = None
    instance_prompt: str = SAMPLE_INSTANCE_PROMPT


def acceptance_plan(region: str, now: datetime) -> Plan:
    return Plan(
        dataset=f"acceptance-{now.strftime('%Y%m%d%H%M%S')}",
        source_bucket=sample_source_bucket(region),
        prompts=tuple(f"{SAMPLE_INSTANCE_PROMPT} {ending}" for ending in PROMPT_ENDINGS),
        seed=1,
    )


@dataclass
class Stage:
    name: str
    seconds: float
    detail: str = ""


@dataclass
class Report:
    backend: str
    emulated: bool
    region: str
    dataset: str
    ok: bool = False
    stages: list[Stage] = field(default_factory=list)
    model_id: Optional[str] = None
    training_job_name: Optional[str] = None
    endpoint_name: Optional[str] = None
    instance_prompt: Optional[str] = None
    images: list[dict[str, Any]] = field(default_factory=list)
    cost: dict[str, Any] = field(default_factory=dict)
    created: dict[str, bool] = field(default_factory=lambda: {"stack": False, "endpoint": False})
    destroyed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    assumptions: list["Assumption"] = field(default_factory=list)
    """The assumptions table: what the offline tests rest on, as this run saw it."""
    started_at: Optional[datetime] = None

    def to_dict(self) -> dict[str, Any]:
        body = dict(self.__dict__)
        body["stages"] = [stage.__dict__ for stage in self.stages]
        body["assumptions"] = [a.__dict__ for a in self.assumptions]
        body["total_seconds"] = round(sum(stage.seconds for stage in self.stages), 1)
        return body


class Backend(Protocol):
    """Where the flow runs. Both backends give the same handles; only these differ."""

    name: str
    emulated: bool
    region: str

    def ensure_deployed(self, say: Callable[[str], None]) -> bool: ...  # True: this run deployed it
    def api(self) -> Any: ...  # scripts.cli.api_client.ApiClient (or one with the same calls)
    def s3(self) -> Any: ...
    def sagemaker(self) -> Any: ...
    def data_bucket(self) -> str: ...
    def store(self, key: str, *, copy_from: Optional[tuple[str, str]] = None, body: bytes = b"") -> None: ...
    def sleep(self, seconds: float) -> None: ...
    def destroy_stack(self, say: Callable[[str], None]) -> None: ...
    def observe(self, report: "Report", config: Any) -> list["Assumption"]: ...  # the assumptions table


# ---- the flow ------------------------------------------------------------------------------------


def copy_sample(backend: Backend, plan: Plan) -> list[str]:
    """The public sample's photos (dataset_info.json last) into datasets/<plan.dataset>/; their keys."""
    if plan.source_bucket is None:
        raise ValueError("the plan names no source bucket")
    s3 = backend.s3()
    listing = s3.list_objects_v2(Bucket=plan.source_bucket, Prefix=SAMPLE_PREFIX).get("Contents", [])
    names = sorted(o["Key"][len(SAMPLE_PREFIX) :] for o in listing if not o["Key"].endswith("/"))
    images = [n for n in names if "/" not in n and n.lower().endswith((".jpg", ".jpeg", ".png"))]
    if not images:
        raise RuntimeError(f"no photos under s3://{plan.source_bucket}/{SAMPLE_PREFIX}")
    keys = []
    for name in images + (["dataset_info.json"] if "dataset_info.json" in names else []):
        key = f"datasets/{plan.dataset}/{name}"
        backend.store(key, copy_from=(plan.source_bucket, SAMPLE_PREFIX + name))
        keys.append(key)
    if "dataset_info.json" not in names:
        key = f"datasets/{plan.dataset}/dataset_info.json"
        backend.store(key, body=json.dumps({"instance_prompt": plan.instance_prompt}).encode())
        keys.append(key)
    return keys


@contextmanager
def _stage(report: Report, name: str, clock: Callable[[], float]) -> Iterator[Stage]:
    stage = Stage(name, 0.0)
    started = clock()
    try:
        yield stage
    finally:
        stage.seconds = round(clock() - started, 1)
        report.stages.append(stage)


class _BackendClock:
    """scripts.cli.follow.Clock over the backend's sleep (real time on AWS, short waits on the emulator)."""

    def __init__(self, backend: Backend):
        self._backend = backend

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def run_flow(
    backend: Backend,
    plan: Plan,
    out_dir: Path,
    *,
    say: Callable[[str], None] = lambda _t: None,
    photos: Optional[dict[str, bytes]] = None,
    config: Any = None,
    poll_s: float = 30.0,
    training_timeout_s: float = TRAINING_TIMEOUT_S,
    destroy: bool = False,
    measure_scaling: bool = False,
) -> Report:
    """Deploy if needed, create the dataset, follow it to a live model, generate, report (see module doc)."""
    from scripts.cli.follow import Follower
    from scripts.cli.generation import Generator, save_images

    report = Report(
        backend=backend.name,
        emulated=backend.emulated,
        region=backend.region,
        dataset=plan.dataset,
        started_at=datetime.now(timezone.utc),
    )
    if backend.emulated:
        report.notes.append(EMULATED_NOTE)
    clock = time.monotonic
    with _stage(report, "deploy", clock) as stage:
        report.created["stack"] = backend.ensure_deployed(say)
        stage.detail = "deployed by this run" if report.created["stack"] else "already deployed"
    api = backend.api()
    endpoint_before = (api.status().get("endpoint") or {}).get("state")
    known = {m["model_id"] for m in api.models().get("models", [])}
    with _stage(report, "create dataset", clock) as stage:
        if photos is not None:
            for name, body in photos.items():
                backend.store(f"datasets/{plan.dataset}/{name}", body=body)
            keys = list(photos)
        else:
            keys = copy_sample(backend, plan)
        stage.detail = f"{len(keys)} files into s3://{backend.data_bucket()}/datasets/{plan.dataset}/"
    say(f"dataset {plan.dataset}: {len(keys)} files; following the pipeline")

    follower = Follower(api, timeout_s=training_timeout_s, poll_s=poll_s, clock=_BackendClock(backend), say=say)
    outcome = follower.training(plan.dataset, known)
    _phase_stages(report, outcome.phases, outcome.elapsed_s)
    model = outcome.model or {}
    report.model_id = model.get("model_id")
    report.training_job_name = model.get("training_job_name")
    report.instance_prompt = model.get("instance_prompt")
    status = api.status()
    report.endpoint_name = (status.get("endpoint") or {}).get("name")
    report.created["endpoint"] = endpoint_before in (None, "none") and outcome.ok
    if not outcome.ok:
        report.problems.append(f"the model did not go live: {outcome.reason}")
    else:
        generator_clock = _BackendClock(backend)

        def generate(stage_name: str, prompt: str, folder: str) -> None:
            with _stage(report, stage_name, clock) as stage:
                request = {"prompt": prompt, "num_images": plan.num_images}
                if plan.seed is not None:
                    request["seed"] = plan.seed
                generation = Generator(
                    api, timeout_s=GENERATE_TIMEOUT_S, clock=generator_clock, say=say, poll_s=min(poll_s, 5.0)
                ).run(request)
                paths = save_images(api, generation, out_dir / folder)
                stage.detail = f"{generation['status']}, {len(paths)} image(s)"
                report.images.append(
                    {
                        "prompt": prompt,
                        "status": generation["status"],
                        "id": generation["id"],
                        "files": [str(p.relative_to(out_dir)) for p in paths],
                        "seeds": [i["seed"] for i in generation.get("images", [])],
                        "error": generation.get("error"),
                    }
                )
                if generation["status"] != "succeeded":
                    report.problems.append(
                        f"generation of {prompt!r} {generation['status']}: {generation.get('error')}"
                    )

        for index, prompt in enumerate(plan.prompts):
            generate(f"generate: {prompt}", prompt, f"prompt-{index + 1}")
        if measure_scaling and config is not None and config.serving.idle_minutes and report.endpoint_name:
            if wait_for_scale_in(backend, report, config, poll_s, clock, say):
                generate(FROM_ZERO_STAGE, plan.prompts[0], "from-zero")
    report.cost = run_cost(backend, report, config)
    report.assumptions = backend.observe(report, config)
    if destroy:
        report.destroyed = destroy_created(backend, report, say)
    report.ok = not report.problems
    write_report(report, out_dir)
    return report


SCALE_IN_STAGE = "scale-in to zero"
FROM_ZERO_STAGE = "generate from zero instances"


def wait_for_scale_in(
    backend: Backend, report: Report, config: Any, poll_s: float, clock: Callable[[], float], say: Callable[[str], None]
) -> bool:
    """After the last generation: how long until the endpoint has no instance (a stage). True: it scaled in."""
    expected_s = (config.serving.idle_minutes + costs.SCALE_IN_DELAY_MINUTES) * 60
    say(f"waiting for the endpoint to scale in to zero (the cost model: {expected_s / 60:g} min)")
    with _stage(report, SCALE_IN_STAGE, clock) as stage:
        started = clock()
        while True:
            described = backend.sagemaker().describe_endpoint(EndpointName=report.endpoint_name)
            count = sum(v.get("CurrentInstanceCount", 0) for v in described.get("ProductionVariants", []))
            if count == 0:
                stage.detail = "no instance left"
                return True
            if clock() - started > 3 * expected_s + 600:
                stage.detail = f"still {count} instance(s): gave up waiting"
                report.notes.append(f"the endpoint did not scale in to zero within {clock() - started:.0f} s")
                return False
            backend.sleep(poll_s)


def _phase_stages(report: Report, phases: list[dict[str, Any]], end_s: float) -> None:
    """The follower's phases (waiting, validating, training, deploying, live) as stages with durations."""
    for current, following in zip(phases, phases[1:] + [{"elapsed_s": end_s}]):
        if current["phase"] in ("live", "failed"):
            continue
        report.stages.append(
            Stage(current["phase"], round(following["elapsed_s"] - current["elapsed_s"], 1), current.get("detail", ""))
        )


def run_cost(backend: Backend, report: Report, config: Any) -> dict[str, Any]:
    """The run's cost from the cost model: billable training time and the endpoint's hours so far."""
    if config is None:
        return {}
    pricing = costs.Pricing.load()
    training_s = sum(s.seconds for s in report.stages if s.name == "training")
    billable_s = None
    if report.training_job_name:
        try:
            job = backend.sagemaker().describe_training_job(TrainingJobName=report.training_job_name)
            billable_s = job.get("BillableTimeInSeconds")
        except Exception as error:  # the report still gives the timed duration
            report.notes.append(f"DescribeTrainingJob failed ({error}); training billed from the timed duration")
    try:
        estimate = costs.estimate(
            pricing,
            backend.region,
            config.training.instance_type,
            config.serving.instance_type,
            (billable_s or training_s) / 60 or None,
        )
    except costs.NoPrice as error:
        return {"error": str(error)}
    endpoint_s = sum(s.seconds for s in report.stages if s.name == "deploying" or s.name.startswith("generate"))
    endpoint_usd = estimate.endpoint_hourly_usd * endpoint_s / 3600
    return {
        "training_instance_type": estimate.training_instance_type,
        "training_minutes": round(estimate.training_minutes, 2),
        "training_billable_seconds": billable_s,
        "training_usd": round(estimate.training_run_usd, 4),
        "endpoint_instance_type": estimate.endpoint_instance_type,
        "endpoint_seconds": round(endpoint_s, 1),
        "endpoint_usd": round(endpoint_usd, 4),
        "endpoint_hourly_usd": estimate.endpoint_hourly_usd,
        "total_usd": round(estimate.training_run_usd + endpoint_usd, 4),
        "prices_as_of": estimate.prices_as_of,
        "note": "on-demand list prices (scripts/pricing_table.json); the endpoint bills until it is deleted "
        "(idleMinutes, or --destroy)",
    }


def destroy_created(backend: Backend, report: Report, say: Callable[[str], None]) -> list[str]:
    """Remove what this run created (endpoint, stack); never the bucket, photos or images."""
    removed = []
    if report.created.get("stack"):
        backend.destroy_stack(say)
        removed.append("stack (cdk destroy; the data bucket is retained)")
    elif report.created.get("endpoint") and report.endpoint_name:
        backend.sagemaker().delete_endpoint(EndpointName=report.endpoint_name)
        removed.append(f"endpoint {report.endpoint_name} (its model and config stay: they cost nothing)")
    return removed


def destroy_previous(backend: Backend, report_path: Path, say: Callable[[str], None]) -> list[str]:
    """--destroy-previous: what an earlier run recorded as created, removed now."""
    data = json.loads(report_path.read_text())
    if data.get("emulated"):
        raise ValueError(f"{report_path} is an emulator run: it created nothing on AWS")
    if data.get("destroyed"):
        return []  # that run already removed what it created
    report = Report(
        backend=data["backend"],
        emulated=False,
        region=data["region"],
        dataset=data["dataset"],
        endpoint_name=data.get("endpoint_name"),
        created=dict(data.get("created") or {}),
    )
    return destroy_created(backend, report, say)


def latest_report(root: Path) -> Path:
    reports = sorted(root.glob("*/report.json"))
    if not reports:
        raise FileNotFoundError(f"no report.json under {root}: run `make acceptance` first")
    return reports[-1]


def write_report(report: Report, out_dir: Path) -> None:
    data = report.to_dict()
    _write_new(out_dir / "report.json", json.dumps(data, indent=1, default=str).encode())
    _write_new(out_dir / "report.md", render_markdown(data).encode())


def render_markdown(data: dict[str, Any]) -> str:
    lines = [f"# Acceptance run: {'passed' if data['ok'] else 'FAILED'} ({data['backend']}, {data['region']})", ""]
    lines += [f"> {note}" for note in data["notes"]] + ([""] if data["notes"] else [])
    lines += [
        f"Dataset `{data['dataset']}`, model `{data['model_id']}`, training job `{data['training_job_name']}`, "
        f"endpoint `{data['endpoint_name']}`.",
        "",
        "| Stage | Seconds | Detail |",
        "|---|---:|---|",
    ]
    lines += [f"| {s['name']} | {s['seconds']:.1f} | {s['detail']} |" for s in data["stages"]]
    lines += [f"| total | {data['total_seconds']:.1f} | |", ""]
    cost = data.get("cost") or {}
    if "total_usd" in cost:
        lines += [
            f"Cost (cost model): training ${cost['training_usd']:.2f} ({cost['training_minutes']} min on "
            f"{cost['training_instance_type']}), endpoint ${cost['endpoint_usd']:.2f} "
            f"({cost['endpoint_seconds']:.0f} s on {cost['endpoint_instance_type']}), total "
            f"${cost['total_usd']:.2f}; {cost['note']}; prices as of {cost['prices_as_of']}.",
            "",
        ]
    elif cost:
        lines += [f"Cost: {cost.get('error')}", ""]
    if data.get("assumptions"):
        lines += [
            "## Assumptions the offline tests rest on",
            "",
            "| Assumption | Status | What this run saw |",
            "|---|---|---|",
        ]
        lines += [f"| {a['assumed']} | {a['status']} | {_cell(a['observed'])} |" for a in data["assumptions"]]
        lines.append("")
    for image in data["images"]:
        lines.append(f'- "{image["prompt"]}": {image["status"]}, seeds {image["seeds"]}, files {image["files"]}')
    lines += [f"- Created: stack {data['created']['stack']}, endpoint {data['created']['endpoint']}"]
    lines += [f"- Removed (--destroy): {item}" for item in data["destroyed"]]
    lines += [f"- Problem: {p}" for p in data["problems"]]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def new_out_dir(root: Path, now: Optional[datetime] = None) -> Path:
    """A folder that did not exist before: <root>/<UTC time>[-n]/."""
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


# ---- the assumptions table: what the offline tests rest on, as the run saw it ----------------------

CONFIRMED, CONTRADICTED, NOT_OBSERVED, EMULATED = "confirmed", "contradicted", "not observed", "emulated"
TIME_TOLERANCE = 1.25
"""A measured time up to this multiple of the cost model's still confirms it."""
HISTORY_TOLERANCE = 1.5
"""AWS's events per execution up to this multiple of the emulator's confirm the count (real waits are
longer than the emulator's, so polling loops go round more often on AWS)."""
MACHINES = {"train": TRAINING_MACHINE_SUFFIX, "deploy": DEPLOY_MACHINE_SUFFIX}


@dataclass
class Assumption:
    key: str
    assumed: str
    status: str
    """CONFIRMED, CONTRADICTED (observed says what AWS showed), NOT_OBSERVED or EMULATED."""
    observed: str


def assumed_texts(config: Any) -> dict[str, str]:
    """The table's rows, in order: key -> what the offline tests (and the cost model) assume."""
    import botocore

    idle = config.serving.idle_minutes if config is not None else "idleMinutes"
    return {
        "jumpstart_lock": "the lock's values for the region are what JumpStart's metadata resolves "
        "(stacks/training/jumpstart.lock.json)",
        "training_output_code": "the training output has no code/inference.py, so the packaging step adds "
        "JumpStart's (the emulator simulates such an output)",
        "access_denied": "no function, state machine or training job is denied an AWS call (the emulator's IAM "
        "evaluation passes them)",
        "history_events": f"each execution writes about the history events the emulator counts for the same run "
        f"(at most {HISTORY_TOLERANCE:g}x), and fewer than {HISTORY_EVENT_LIMIT:,}",
        "packaging_time": f"the packaging step unpacks the trained model within its function's "
        f"{PACKAGING_TIMEOUT_S} s timeout",
        "training_time": f"a training on the sample bills at most {costs.DEFAULT_TRAINING_MINUTES:g} min "
        "(the cost model)",
        "endpoint_creation": f"creating the endpoint takes at most {costs.ENDPOINT_CREATION_MINUTES:g} min "
        "(the cost model)",
        "generation_time": f"one image takes at most {costs.SECONDS_PER_IMAGE:g} s on a running instance, queue "
        "and polling included (the cost model)",
        "scale_in": f"the endpoint is at zero instances {idle} + {costs.SCALE_IN_DELAY_MINUTES:g} min after its last "
        "request (idleMinutes + the cost model's scale-in delay)",
        "scale_out_from_zero": f"a request at zero instances is answered within "
        f"{costs.ENDPOINT_CREATION_MINUTES:g} min + {costs.SECONDS_PER_IMAGE:g} s (an instance "
        "start, as the cost model counts an endpoint creation)",
        "sdk_version": f"every function runs with the botocore the tests ran with ({botocore.__version__})",
    }


def _rows(config: Any, found: dict[str, tuple[str, str]]) -> list[Assumption]:
    """Every row of the table, each with its (status, observed); a row nobody observed says so."""
    return [
        Assumption(key, text, *found.get(key, (NOT_OBSERVED, "this run had nothing to observe it with")))
        for key, text in assumed_texts(config).items()
    ]


def compare_time(
    measured_s: Optional[float], assumed_s: float, what: str, missing: str, cost: str = ""
) -> tuple[str, str]:
    if measured_s is None:
        return NOT_OBSERVED, missing
    seen = f"{what} {measured_s / 60:.1f} min ({measured_s:.0f} s), the model assumes {assumed_s / 60:.1f} min{cost}"
    return (CONFIRMED if measured_s <= assumed_s * TIME_TOLERANCE else CONTRADICTED), seen


def stage_seconds(report: Report, name: str) -> Optional[float]:
    found = [s.seconds for s in report.stages if s.name == name]
    return sum(found) if found else None


def observe_times(report: Report, config: Any) -> dict[str, tuple[str, str]]:
    """The stage rows: each stage's time (and cost) against the cost model's assumptions."""
    cost = report.cost or {}
    billable = cost.get("training_billable_seconds") or stage_seconds(report, "training")
    hourly = cost.get("endpoint_hourly_usd")
    generations = [s.seconds for s in report.stages if s.name.startswith("generate: ")]
    images = len(generations) * max(1, len(report.images[0].get("files", [])) if report.images else 1)
    deploying = stage_seconds(report, "deploying")
    found = {
        "training_time": compare_time(
            billable,
            costs.DEFAULT_TRAINING_MINUTES * 60,
            "training billed",
            "no training ran",
            f"; ${cost['training_usd']:.2f}" if "training_usd" in cost else "",
        ),
        "endpoint_creation": compare_time(
            deploying,
            costs.ENDPOINT_CREATION_MINUTES * 60,
            "deploying took",
            "no endpoint was created or updated",
            f"; ${hourly * deploying / 3600:.2f}" if hourly and deploying else "",
        ),
        "generation_time": compare_time(
            sum(generations) / images if generations else None,
            costs.SECONDS_PER_IMAGE,
            "one image took",
            "nothing was generated",
        ),
    }
    scale_in = stage_seconds(report, SCALE_IN_STAGE)
    scaled = next((s for s in report.stages if s.name == SCALE_IN_STAGE), None)
    idle_s = (config.serving.idle_minutes if config is not None else 0) * 60
    if scaled is not None and scaled.detail == "no instance left":
        found["scale_in"] = compare_time(scale_in, idle_s + costs.SCALE_IN_DELAY_MINUTES * 60, "scale-in took", "")
    elif scaled is not None:
        found["scale_in"] = (CONTRADICTED, f"after {scale_in:.0f} s: {scaled.detail}")
    else:
        found["scale_in"] = (
            NOT_OBSERVED,
            "the run did not wait for scale-in (--no-scaling, idleMinutes 0, or no model went live)",
        )
    from_zero = stage_seconds(report, FROM_ZERO_STAGE)
    found["scale_out_from_zero"] = compare_time(
        from_zero,
        costs.ENDPOINT_CREATION_MINUTES * 60 + costs.SECONDS_PER_IMAGE,
        "the request at zero took",
        "no request was sent at zero instances",
    )
    return found


def history_counts(sfn: Any, machine_arns: dict[str, str], since: Optional[datetime]) -> dict[str, list[int]]:
    """machine key -> history event count of each execution started since `since` (GetExecutionHistory)."""
    counts: dict[str, list[int]] = {}
    for key, arn in machine_arns.items():
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=arn):
            for execution in page["executions"]:
                if since is not None and execution["startDate"] < since:
                    continue
                pages = sfn.get_paginator("get_execution_history").paginate(
                    executionArn=execution["executionArn"], PaginationConfig={"PageSize": 1000}
                )
                counts.setdefault(key, []).append(sum(len(p["events"]) for p in pages))
    return counts


def compare_history(
    aws: dict[str, list[int]], emulator: Optional[dict[str, list[int]]], why_no_emulator: str = ""
) -> tuple[str, str]:
    if not aws:
        return NOT_OBSERVED, "no execution of the stack's state machines since the run started"
    parts, contradicted = [], False
    for key, found in sorted(aws.items()):
        emulated = (emulator or {}).get(key)
        part = f"{key}: AWS {max(found)} events (most of {len(found)} execution(s))"
        if emulated:
            part += f", the emulator {max(emulated)}"
            contradicted |= max(found) > max(emulated) * HISTORY_TOLERANCE
        contradicted |= max(found) >= HISTORY_EVENT_LIMIT
        parts.append(part)
    seen = "; ".join(parts)
    if emulator is None:
        return (CONTRADICTED if contradicted else NOT_OBSERVED), f"{seen}; the emulator's figures: {why_no_emulator}"
    return (CONTRADICTED if contradicted else CONFIRMED), seen


def _log_events(
    logs: Any, group: str, pattern: str, since_ms: int, stream_prefix: Optional[str] = None, most: int = 50
) -> list[dict[str, Any]]:
    kwargs: dict[str, Any] = {"logGroupName": group, "filterPattern": pattern, "startTime": since_ms}
    if stream_prefix:
        kwargs["logStreamNamePrefix"] = stream_prefix
    events: list[dict[str, Any]] = []
    for page in logs.get_paginator("filter_log_events").paginate(**kwargs, PaginationConfig={"MaxItems": most}):
        events += page.get("events", [])
    return events


def packaging_line(
    logs: Any, groups: Sequence[str], training_output: str, since_ms: int
) -> Optional[tuple[str, dict[str, Any]]]:
    """(log group, record) of the packaging function's line for `training_output` (PackagedLog), if logged."""
    from botocore.exceptions import ClientError

    for group in groups:
        try:
            events = _log_events(logs, group, f'"{PackagedLog.MESSAGE}"', since_ms)
        except ClientError:
            continue
        for event in events:
            try:
                record = json.loads(event["message"])
            except ValueError:
                continue
            if isinstance(record, dict) and record.get(PackagedLog.TRAINING_OUTPUT) == training_output:
                return group, record
    return None


def training_output_of(sagemaker: Any, job_name: Optional[str]) -> tuple[Optional[str], str]:
    """(the job's S3ModelArtifacts, or None with why it is not there)."""
    if not job_name:
        return None, "no training job ran"
    uri = (
        sagemaker.describe_training_job(TrainingJobName=job_name).get("ModelArtifacts", {}).get("S3ModelArtifacts", "")
    )
    if not uri.startswith("s3://"):
        return None, f"the job names no model artifacts ({uri or 'none'})"
    return uri, ""


def observe_training_output(
    logs: Any, groups: Sequence[str], training_output: Optional[str], why_none: str, since_ms: int
) -> tuple[str, str]:
    """Did the training output (model.tar.gz) hold code/inference.py? The packaging step looked (PackagedLog):
    its `code_added` says so, without this machine downloading a multi-GB tarball to list it."""
    if training_output is None:
        return NOT_OBSERVED, why_none
    found = packaging_line(logs, groups, training_output, since_ms)
    if found is None:
        return NOT_OBSERVED, f'no "{PackagedLog.MESSAGE}" line for {training_output} since the run started'
    group, record = found
    if record.get(PackagedLog.CODE_ADDED) is True:
        return CONFIRMED, (
            f"{training_output} had no code/inference.py: the packaging step added JumpStart's "
            f"({record.get('files')} files; {group})"
        )
    return CONTRADICTED, (
        f"{training_output} has code/inference.py itself: the packaging step kept it "
        f"({PackagedLog.CODE_ADDED}={record.get(PackagedLog.CODE_ADDED)}; {group})"
    )


def observe_packaging_time(
    logs: Any, groups: Sequence[str], training_output: Optional[str], why_none: str, since_ms: int
) -> tuple[str, str]:
    """The packaging invocation's own Duration (Lambda's REPORT line of the request that logged PackagedLog)
    against its timeout."""
    if training_output is None:
        return NOT_OBSERVED, why_none
    found = packaging_line(logs, groups, training_output, since_ms)
    if found is None:
        return NOT_OBSERVED, (
            f'no "{PackagedLog.MESSAGE}" line for {training_output} since the run started (a '
            f'packaging that ran out of time logs "Task timed out after {PACKAGING_TIMEOUT_S}.00 '
            "seconds\" instead: see the training's failure)"
        )
    group, record = found
    request = record.get("function_request_id")
    reports = _log_events(logs, group, f'"REPORT RequestId: {request}"', since_ms) if request else []
    durations = [
        float(m.group(1)) / 1000 for e in reports if (m := re.search(r"\bDuration: ([0-9.]+) ms", e["message"]))
    ]
    if not durations:
        return NOT_OBSERVED, f"no Lambda REPORT line for request {request} in {group}"
    took = max(durations)
    seen = (
        f"packaging took {took:.0f} s ({took / PACKAGING_TIMEOUT_S:.0%} of the {PACKAGING_TIMEOUT_S} s timeout) "
        f"for {training_output}"
    )
    return (CONFIRMED if took < PACKAGING_TIMEOUT_S else CONTRADICTED), seen


def observe_access_denied(
    logs: Any, groups: Sequence[str], training_job: Optional[str], since_ms: int, endpoint: Optional[str] = None
) -> tuple[str, str]:
    """FilterLogEvents for "AccessDenied" over the stack's log groups, the training job's streams and the
    endpoint's container logs (what the model server reads from S3 with the hosting role)."""
    from botocore.exceptions import ClientError

    from dreambooth_shared.contract import error_code

    searched, hits, unreadable = [], [], []
    targets = (
        [(g, None) for g in groups]
        + ([(TRAINING_JOB_LOG_GROUP, training_job)] if training_job else [])
        + ([(ENDPOINT_LOG_GROUP_PREFIX + endpoint, None)] if endpoint else [])
    )
    for group, stream in targets:
        try:
            events = _log_events(logs, group, '"AccessDenied"', since_ms, stream)
        except ClientError as error:
            unreadable.append(f"{group} ({error_code(error)})")
            continue
        searched.append(group)
        hits += [f"{group}: {e['message'].strip()[:200]}" for e in events]
    if hits:
        return CONTRADICTED, f"{len(hits)} line(s) with AccessDenied: " + " | ".join(hits[:3])
    if not searched:
        return NOT_OBSERVED, "no log group could be read: " + ", ".join(unreadable)
    return CONFIRMED, (
        f"no AccessDenied in {len(searched)} log group(s)"
        + (f"; not readable: {', '.join(unreadable)}" if unreadable else "")
    )


def observe_sdk_versions(logs: Any, groups: Sequence[str], since_ms: int, expected: str) -> tuple[str, str]:
    """The `sdk_versions` each function logged at its cold starts (dreambooth_shared/contract.py, log_cold_start)."""
    from botocore.exceptions import ClientError

    reported: dict[str, set[str]] = {}
    for group in groups:
        try:
            events = _log_events(logs, group, f'"{SDK_VERSIONS_LOG_FIELD}"', since_ms)
        except ClientError:
            continue
        for event in events:
            try:
                versions = json.loads(event["message"]).get(SDK_VERSIONS_LOG_FIELD) or {}
            except (ValueError, AttributeError):
                continue
            if versions.get("botocore"):
                reported.setdefault(group.rsplit("/", 1)[-1], set()).add(versions["botocore"])
    if not reported:
        return NOT_OBSERVED, f"no function logged {SDK_VERSIONS_LOG_FIELD} since the run started"
    seen = "; ".join(f"{name}: botocore {', '.join(sorted(v))}" for name, v in sorted(reported.items()))
    same = all(v == {expected} for v in reported.values())
    return (CONFIRMED if same else CONTRADICTED), seen


def observe_lock(session: Any, region: str, lock_path: Path, config: Any = None) -> tuple[str, str]:
    """Resolve the region from JumpStart's metadata now (in memory, for the instance types `config` trains and
    serves on) and compare with the lock."""
    from scripts import refresh_jumpstart_lock as jumpstart
    from stacks.training.jumpstart_lock import JumpStartLock

    if not jumpstart.sdk_installed():
        return NOT_OBSERVED, "the SageMaker SDK is not installed (requirements-lock.txt)"
    lock = JumpStartLock.load(lock_path)
    from sagemaker.core.helper.session_helper import Session

    try:
        types = jumpstart.InstanceTypes.of(config) if config is not None else None
        resolved = jumpstart.resolve(
            [region], lock.model_version, types, model_id=lock.model_id, sagemaker_session=Session(boto_session=session)
        )
    except jumpstart.JumpStartUnavailable as error:
        return CONTRADICTED, error.problem
    now = resolved["regions"][region]
    locked = lock.regions.get(region, {})
    differ = [
        f"{name}: locked {locked.get(name)}, JumpStart {value}"
        for name, value in now.items()
        if locked.get(name) != value
    ]
    if resolved["model_version"] != lock.model_version:
        differ.insert(0, f"model_version: locked {lock.model_version}, JumpStart {resolved['model_version']}")
    if differ:
        return CONTRADICTED, "; ".join(differ)
    return CONFIRMED, f"version {lock.model_version}: the {len(now)} URIs as locked"


# ---- the two backends ----------------------------------------------------------------------------


class AwsBackend:
    """A real account: the user's session, the deployed stack's outputs, real waits."""

    name = "aws"
    emulated = False

    def __init__(
        self,
        session: Any,
        config: Any,
        deploy_args: Sequence[str] = (),
        run: Optional[Callable[[Sequence[str], dict[str, str]], int]] = None,
        root: Path = ROOT,
        emulator_figures: Optional[Callable[[], dict[str, list[int]]]] = None,
    ):
        self.session, self.config, self.deploy_args, self.root = session, config, list(deploy_args), root
        self._emulator_figures = emulator_figures or (lambda: emulator_history_figures(config))
        self.region = session.region_name or "us-east-1"
        self._run = run
        self._deployment: Any = None

    def _find(self) -> Any:
        from scripts.cli import stack_outputs

        return stack_outputs.find(self.session, self.config.stack_name)

    def ensure_deployed(self, say: Callable[[str], None]) -> bool:
        from scripts import deploy
        from scripts.cli import stack_outputs

        try:
            self._deployment = self._find()
            return False
        except stack_outputs.NotDeployed:
            say(f"stack {self.config.stack_name} is not deployed in {self.region}: deploying it (scripts/deploy.py)")
        code = deploy.deploy(
            [*self.deploy_args, "--require-approval", "never"],
            self.session,
            self._run or deploy._run,
            dict(os.environ),
            self.config,
            self.root,
        )
        if code:
            raise RuntimeError(f"the deploy failed (exit {code})")
        self._deployment = self._find()
        return True

    def api(self) -> Any:
        from scripts.cli import stack_outputs

        return stack_outputs.api_client(self.session, self._deployment)

    def s3(self) -> Any:
        return self.session.client("s3")

    def sagemaker(self) -> Any:
        return self.session.client("sagemaker")

    def data_bucket(self) -> str:
        return self._deployment.bucket

    def store(self, key: str, *, copy_from: Optional[tuple[str, str]] = None, body: bytes = b"") -> None:
        # The bucket's EventBridge notification starts the pipeline; If-None-Match: nothing is overwritten.
        if copy_from:
            self.s3().copy_object(
                Bucket=self.data_bucket(), Key=key, CopySource={"Bucket": copy_from[0], "Key": copy_from[1]}
            )
        else:
            self.s3().put_object(Bucket=self.data_bucket(), Key=key, Body=body, IfNoneMatch="*")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def stack_resources(self) -> list[dict[str, Any]]:
        cloudformation = self.session.client("cloudformation")
        return [
            r
            for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=self.config.stack_name)
            for r in page["StackResourceSummaries"]
        ]

    def observe(self, report: Report, config: Any) -> list[Assumption]:
        """The assumptions table from what AWS shows: logs, histories, listings, JumpStart's metadata."""
        import botocore

        from stacks.shared.functions import STATE_MACHINE_LOG_PREFIX
        from stacks.training.jumpstart_lock import LOCK_FILE

        found = observe_times(report, config)
        since = report.started_at or datetime.now(timezone.utc)
        since_ms = int(since.timestamp() * 1000)
        logs = self.session.client("logs")

        def guarded(key: str, observe: Callable[[], tuple[str, str]]) -> None:
            try:
                found[key] = observe()
            except Exception as error:  # one row failing to observe never loses the report
                found[key] = (NOT_OBSERVED, f"could not observe: {type(error).__name__}: {error}")

        resources: list[dict[str, Any]] = []
        guarded("stack", lambda: (resources.extend(self.stack_resources()), (CONFIRMED, ""))[1])
        if found["stack"][0] == NOT_OBSERVED:
            report.notes.append(f"the stack's resources (log groups, state machines): {found['stack'][1]}")
        groups = [r["PhysicalResourceId"] for r in resources if r["ResourceType"] == "AWS::Logs::LogGroup"]
        function_groups = [g for g in groups if not g.startswith(STATE_MACHINE_LOG_PREFIX)]
        machines = {
            key: r["PhysicalResourceId"]
            for r in resources
            if r["ResourceType"] == "AWS::StepFunctions::StateMachine"
            for key, suffix in MACHINES.items()
            if r["PhysicalResourceId"].endswith(suffix)
        }
        guarded(
            "jumpstart_lock",
            lambda: observe_lock(self.session, self.region, self.root / LOCK_FILE.relative_to(ROOT), config),
        )
        try:
            training_output, why_none = training_output_of(self.sagemaker(), report.training_job_name)
        except Exception as error:  # both rows below then say why
            training_output, why_none = None, f"could not observe: {type(error).__name__}: {error}"
        guarded(
            "training_output_code",
            lambda: observe_training_output(logs, function_groups, training_output, why_none, since_ms),
        )
        guarded(
            "packaging_time", lambda: observe_packaging_time(logs, function_groups, training_output, why_none, since_ms)
        )
        guarded(
            "access_denied",
            lambda: observe_access_denied(logs, groups, report.training_job_name, since_ms, report.endpoint_name),
        )
        guarded("sdk_version", lambda: observe_sdk_versions(logs, function_groups, since_ms, botocore.__version__))

        def history() -> tuple[str, str]:
            aws = history_counts(self.session.client("stepfunctions"), machines, since)
            try:
                emulated, why = self._emulator_figures(), ""
            except Exception as error:  # the comparison needs the emulator (moto): say why it is missing
                emulated, why = None, f"not computed ({type(error).__name__}: {error})"
            return compare_history(aws, emulated, why)

        guarded("history_events", history)
        return _rows(config, found)

    def destroy_stack(self, say: Callable[[str], None]) -> None:
        from scripts import deploy

        say(f"destroying stack {self.config.stack_name} (the data bucket is retained)")
        env = {**os.environ, "CDK_DEPLOY_REGION": self.region}
        code = (self._run or deploy._run)([*deploy.CDK, "destroy", "--force", self.config.stack_name], env)
        if code:
            raise RuntimeError(f"cdk destroy failed (exit {code})")


class HarnessApi:
    """The CLI's ApiClient calls, answered by the real API handler in the harness (no HTTP)."""

    def __init__(self, harness: Any):
        self._harness = harness

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        from scripts.cli.api_client import ApiError

        answer = self._harness.api(method, "/" + path.lstrip("/"), body)
        payload = answer.json() if answer.text else None
        if 200 <= answer.status < 300:
            return answer.status, payload
        error = (payload or {}).get("error", {})
        retry = answer.headers.get("Retry-After")
        raise ApiError(
            answer.status,
            error.get("message", answer.text),
            error.get("code", ""),
            error.get("fields", []),
            float(retry) if retry else None,
        )

    def __getattr__(self, name: str) -> Any:
        # status(), models(), create_generation(), ...: the real client's methods over call() above.
        from scripts.cli.api_client import ApiClient

        method = getattr(ApiClient, name)
        return lambda *args, **kwargs: method(self, *args, **kwargs)

    def download(self, url: str, handle: Any) -> int:
        import requests

        data = requests.get(url, timeout=10).content  # the presigned URL, answered by moto
        handle.write(data)
        return len(data)


class EmulatorBackend:
    """The synthesized stack on moto with simulated SageMaker (emulator/), in this process."""

    name = "emulator"
    emulated = True
    region = "us-east-1"

    def __init__(self, harness: Any, sample_photos: Optional[dict[str, bytes]] = None):
        self.harness = harness
        if sample_photos:
            self._publish_sample(sample_photos)

    def _publish_sample(self, photos: dict[str, bytes]) -> None:
        """The emulator's stand-in for AWS's public sample bucket, with photos drawn here."""
        s3 = self.s3()
        bucket = sample_source_bucket(self.region)
        s3.create_bucket(Bucket=bucket)
        for name, body in photos.items():
            s3.put_object(Bucket=bucket, Key=SAMPLE_PREFIX + name, Body=body)
        s3.put_object(
            Bucket=bucket,
            Key=SAMPLE_PREFIX + "dataset_info.json",
            Body=json.dumps({"instance_prompt": SAMPLE_INSTANCE_PROMPT, "class_prompt": "a photo of a dog"}).encode(),
        )

    def ensure_deployed(self, say: Callable[[str], None]) -> bool:
        return False  # the harness created the stack's resources from the template already

    def api(self) -> Any:
        return HarnessApi(self.harness)

    def s3(self) -> Any:
        return self.harness.client("s3")

    def sagemaker(self) -> Any:
        return self.harness.client("sagemaker")

    def data_bucket(self) -> str:
        return self.harness.bucket

    def store(self, key: str, *, copy_from: Optional[tuple[str, str]] = None, body: bytes = b"") -> None:
        s3 = self.s3()
        if copy_from:
            body = s3.get_object(Bucket=copy_from[0], Key=copy_from[1])["Body"].read()
        self.harness.upload(key, body)  # put + the EventBridge event S3 would send

    def sleep(self, seconds: float) -> None:
        self.harness.clock.wait(min(seconds, 0.5))  # the emulator's time (emulator/clock.py): skipped when all wait

    def destroy_stack(self, say: Callable[[str], None]) -> None:
        raise RuntimeError("the emulator never deploys a stack")

    def history_counts(self) -> dict[str, list[int]]:
        """Each execution's history event count, per machine (the figures an AWS run compares against)."""
        runs = {"train": self.harness.training_runs(), "deploy": self.harness.deploy_runs()}
        return {key: [len(run.events) for run in found] for key, found in runs.items() if found}

    def observe(self, report: Report, config: Any) -> list[Assumption]:
        """The same table, every row "emulated": what the emulator shows stands in for AWS."""
        import botocore

        found = {key: (EMULATED, f"emulator: {seen}") for key, (_, seen) in observe_times(report, config).items()}
        counts = self.history_counts()
        found.update(
            {
                "jumpstart_lock": (EMULATED, "the lock is used as committed; JumpStart's metadata is not read"),
                "training_output_code": (
                    EMULATED,
                    "the simulated training writes no code/; the packaging step adds it",
                ),
                "packaging_time": (
                    EMULATED,
                    "the packaging function ran in this process on the simulated training's small tarball",
                ),
                "access_denied": (EMULATED, "IAM evaluated per role by the harness (emulator/iam.py)"),
                "history_events": (
                    EMULATED,
                    "emulator: "
                    + "; ".join(f"{k}: {max(v)} events (most of {len(v)})" for k, v in sorted(counts.items())),
                ),
                "sdk_version": (EMULATED, f"the handlers run in this process: botocore {botocore.__version__}"),
            }
        )
        return _rows(config, found)


def draw_sample_photos(count: int = 5, label: str = "sample dog") -> dict[str, bytes]:
    """512x512 JPEGs drawn here (shapes and a label), so no user data and no network are needed."""
    from PIL import Image, ImageDraw, ImageFont

    photos = {}
    font = ImageFont.load_default(size=28)
    for index in range(count):
        image = Image.new("RGB", (512, 512), (40 + 40 * index, 120, 200 - 30 * index))
        draw = ImageDraw.Draw(image)
        draw.ellipse((96 + 20 * index, 140, 416 - 10 * index, 420), fill=(230, 190, 60), outline=(20, 20, 20), width=6)
        draw.rectangle((180, 60 + 10 * index, 330, 150), fill=(200, 60, 60))
        draw.text((20, 20), f"{label} {index + 1}", fill=(255, 255, 255), font=font)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
        photos[f"sample{index + 1}.jpg"] = buffer.getvalue()
    return photos


@contextmanager
def emulator(
    *,
    training_s: float = 2.0,
    endpoint_s: float = 2.0,
    synthesized: Any = None,
    sample_photos: Optional[dict[str, bytes]] = None,
) -> Iterator[EmulatorBackend]:
    """Synthesize (into a temporary folder) and create the stack on moto; yield the backend."""
    import tempfile

    from emulator import PipelineHarness, SageMakerSimulator, synthesize

    with mock.patch.dict(os.environ, EMULATOR_ENV), tempfile.TemporaryDirectory(prefix="emulator-synth-") as scratch:
        os.environ.pop("AWS_PROFILE", None)  # restored when the patch ends
        started = time.monotonic()
        synthesized = synthesized or synthesize(EMULATOR_CONTEXT, outdir=Path(scratch))
        with PipelineHarness(
            synthesized=synthesized, simulator=SageMakerSimulator(training_s=training_s, endpoint_s=endpoint_s)
        ) as h:
            h.record(
                "emulator",
                f"stack {synthesized.stack_name} synthesized in {time.monotonic() - started:.1f}s "
                f"({len(synthesized.template['Resources'])} resources), created on the emulator",
            )
            yield EmulatorBackend(h, sample_photos)


def emulator_history_figures(config: Any) -> dict[str, list[int]]:
    """The emulator's history event counts for the acceptance plan, computed now (a run on moto, ~1 min)."""
    import tempfile

    with (
        tempfile.TemporaryDirectory(prefix="acceptance-emulated-") as scratch,
        emulator(sample_photos=draw_sample_photos()) as backend,
    ):
        run_flow(
            backend,
            acceptance_plan(backend.region, datetime.now(timezone.utc)),
            Path(scratch),
            config=config,
            poll_s=1.0,
            training_timeout_s=300,
        )
        return backend.history_counts()


def main(argv: Optional[Sequence[str]] = None, session: Any = None) -> int:
    from scripts.aws_session import user_session
    from scripts.context import context_from, has_credentials
    from stacks.config import AppConfig

    parser = argparse.ArgumentParser(prog="python -m scripts.acceptance", description=__doc__.split("\n\n")[0])
    parser.add_argument("--emulator", action="store_true", help="run on the emulator even with AWS credentials")
    parser.add_argument(
        "--destroy",
        action="store_true",
        help="at the end, remove what the run created (endpoint, or the stack it deployed); "
        "never the bucket or the photos",
    )
    parser.add_argument(
        "--destroy-previous",
        nargs="?",
        const="latest",
        metavar="REPORT",
        help="run nothing: remove what an earlier run created, from its report.json (default: the newest under --out)",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="folder for the run's subfolder (default: acceptance-out/)"
    )
    parser.add_argument("--timeout", type=float, default=TRAINING_TIMEOUT_S, help="give up following after S seconds")
    parser.add_argument(
        "--no-scaling",
        action="store_true",
        help="AWS only: do not wait for the endpoint to scale in to zero and send one request "
        "at zero instances (the assumptions table then says the scaling rows were not observed)",
    )
    parser.add_argument(
        "-c",
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="configuration override, as with cdk -c (repeatable)",
    )
    args = parser.parse_args(argv)
    context_args = [item for pair in args.context for item in ("-c", pair)]
    config = AppConfig.load(context_from(context_args, ROOT).get, dict(os.environ))
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    session = session or user_session()
    if args.destroy_previous:
        if not has_credentials(session):
            parser.error("--destroy-previous needs AWS credentials (an emulator run creates nothing on AWS)")
        path = latest_report(args.out) if args.destroy_previous == "latest" else Path(args.destroy_previous)
        removed = destroy_previous(AwsBackend(session, config, context_args), path, say)
        print("\n".join(f"Removed: {item}" for item in removed) or f"Nothing to remove for {path}.")
        return 0
    out_dir = new_out_dir(args.out)
    now = datetime.now(timezone.utc)
    if not args.emulator and has_credentials(session):
        backend = AwsBackend(session, config, context_args)
        say(
            f"AWS credentials found: running on account resources in {backend.region} (this costs money: "
            "see the report's cost; --destroy removes the endpoint or stack the run created)"
        )
        report = run_flow(
            backend,
            acceptance_plan(backend.region, now),
            out_dir,
            say=say,
            config=config,
            training_timeout_s=args.timeout,
            destroy=args.destroy,
            measure_scaling=not args.no_scaling,
        )
    else:
        say(
            "No AWS credentials (or --emulator): running the same flow on the emulator (moto + simulated "
            "SageMaker); the report's numbers are the emulator's, not AWS's."
        )
        with emulator(sample_photos=draw_sample_photos()) as backend:
            report = run_flow(
                backend,
                acceptance_plan(backend.region, now),
                out_dir,
                say=say,
                config=config,
                poll_s=1.0,
                training_timeout_s=min(args.timeout, 300),
                destroy=args.destroy,
            )
    print(render_markdown(report.to_dict()), end="")
    print(f"Report: {out_dir / 'report.md'} and report.json", file=sys.stderr)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
