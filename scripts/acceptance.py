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
  the synthesized stack on moto with simulated SageMaker, tests/harness), and the report says so.
  The offline rehearsal (scripts/rehearse.py, run by `make deploy` without credentials) is this
  flow on the emulator with its own small plan.

`--destroy` then removes what the run created: the endpoint if the run created it (it bills by the
hour), the stack if the run deployed it (`cdk destroy`; the data bucket is retained by the stack).
Never the bucket, the copied photos or the generated images. `--destroy-previous` does the same
later, for an earlier run, from what its report.json recorded (default: the newest report).

What the report is for: the numbers offline tests cannot give (how long a real training and a
real endpoint creation take, what SageMaker named things, what the run cost).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Protocol, Sequence
from unittest import mock

from scripts import costs

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "acceptance-out"
SAMPLE_PREFIX = "training-datasets/dogs_sd_finetuning/"
SAMPLE_INSTANCE_PROMPT = "a photo of a Doppler dog"  # the sample's own dataset_info.json says so
PROMPT_ENDINGS = ("on the sea", "with a hat", "with Donald Trump")  # AWS's JumpStart notebook
TRAINING_TIMEOUT_S = 4 * 3600
GENERATE_TIMEOUT_S = 1800
# No real credentials are ever used by the emulator backend: every AWS call goes to moto.
EMULATOR_ENV = {
    "AWS_ACCESS_KEY_ID": "emulator", "AWS_SECRET_ACCESS_KEY": "emulator", "AWS_SESSION_TOKEN": "emulator",
    "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true", "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
}
# Short waits on the emulator; a deployed stack uses the configured values.
EMULATOR_CONTEXT = {"quietWindowSeconds": 2, "endpointPollSeconds": 1, "endpointMaxWaitMinutes": 5}
EMULATED_NOTE = ("SageMaker is emulated (tests/harness/sagemaker_sim.py): no training job ran and no model was "
                 "loaded; the images are placeholders, and every duration and cost below is the emulator's, "
                 "not AWS's. Run with AWS credentials for the real numbers.")


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
    return Plan(dataset=f"acceptance-{now.strftime('%Y%m%d%H%M%S')}", source_bucket=sample_source_bucket(region),
                prompts=tuple(f"{SAMPLE_INSTANCE_PROMPT} {ending}" for ending in PROMPT_ENDINGS), seed=1)


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

    def to_dict(self) -> dict[str, Any]:
        body = dict(self.__dict__)
        body["stages"] = [stage.__dict__ for stage in self.stages]
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


# ---- the flow ------------------------------------------------------------------------------------


def copy_sample(backend: Backend, plan: Plan) -> list[str]:
    """The public sample's photos (dataset_info.json last) into datasets/<plan.dataset>/; their keys."""
    if plan.source_bucket is None:
        raise ValueError("the plan names no source bucket")
    s3 = backend.s3()
    listing = s3.list_objects_v2(Bucket=plan.source_bucket, Prefix=SAMPLE_PREFIX).get("Contents", [])
    names = sorted(o["Key"][len(SAMPLE_PREFIX):] for o in listing if not o["Key"].endswith("/"))
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


def run_flow(backend: Backend, plan: Plan, out_dir: Path, *, say: Callable[[str], None] = lambda _t: None,
             photos: Optional[dict[str, bytes]] = None, config: Any = None, poll_s: float = 30.0,
             training_timeout_s: float = TRAINING_TIMEOUT_S, destroy: bool = False) -> Report:
    """Deploy if needed, create the dataset, follow it to a live model, generate, report (see module doc)."""
    from scripts.cli.follow import Follower
    from scripts.cli.generation import Generator, save_images

    report = Report(backend=backend.name, emulated=backend.emulated, region=backend.region, dataset=plan.dataset)
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
        for index, prompt in enumerate(plan.prompts):
            with _stage(report, f"generate: {prompt}", clock) as stage:
                request = {"prompt": prompt, "num_images": plan.num_images}
                if plan.seed is not None:
                    request["seed"] = plan.seed
                generation = Generator(api, timeout_s=GENERATE_TIMEOUT_S, clock=generator_clock, say=say,
                                       poll_s=min(poll_s, 5.0)).run(request)
                paths = save_images(api, generation, out_dir / f"prompt-{index + 1}")
                stage.detail = f"{generation['status']}, {len(paths)} image(s)"
                report.images.append({"prompt": prompt, "status": generation["status"], "id": generation["id"],
                                      "files": [str(p.relative_to(out_dir)) for p in paths],
                                      "seeds": [i["seed"] for i in generation.get("images", [])],
                                      "error": generation.get("error")})
                if generation["status"] != "succeeded":
                    report.problems.append(f"generation of {prompt!r} {generation['status']}: {generation.get('error')}")
    report.cost = run_cost(backend, report, config)
    if destroy:
        report.destroyed = destroy_created(backend, report, say)
    report.ok = not report.problems
    write_report(report, out_dir)
    return report


def _phase_stages(report: Report, phases: list[dict[str, Any]], end_s: float) -> None:
    """The follower's phases (waiting, validating, training, deploying, live) as stages with durations."""
    for current, following in zip(phases, phases[1:] + [{"elapsed_s": end_s}]):
        if current["phase"] in ("live", "failed"):
            continue
        report.stages.append(Stage(current["phase"], round(following["elapsed_s"] - current["elapsed_s"], 1),
                                   current.get("detail", "")))


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
        estimate = costs.estimate(pricing, backend.region, config.training.instance_type,
                                  config.serving.instance_type, (billable_s or training_s) / 60 or None)
    except costs.NoPrice as error:
        return {"error": str(error)}
    endpoint_s = sum(s.seconds for s in report.stages if s.name == "deploying" or s.name.startswith("generate"))
    endpoint_usd = estimate.endpoint_hourly_usd * endpoint_s / 3600
    return {
        "training_instance_type": estimate.training_instance_type, "training_minutes": round(estimate.training_minutes, 2),
        "training_billable_seconds": billable_s, "training_usd": round(estimate.training_run_usd, 4),
        "endpoint_instance_type": estimate.endpoint_instance_type, "endpoint_seconds": round(endpoint_s, 1),
        "endpoint_usd": round(endpoint_usd, 4), "endpoint_hourly_usd": estimate.endpoint_hourly_usd,
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
    report = Report(backend=data["backend"], emulated=False, region=data["region"], dataset=data["dataset"],
                    endpoint_name=data.get("endpoint_name"), created=dict(data.get("created") or {}))
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
    lines += [f"Dataset `{data['dataset']}`, model `{data['model_id']}`, training job `{data['training_job_name']}`, "
              f"endpoint `{data['endpoint_name']}`.", "", "| Stage | Seconds | Detail |", "|---|---:|---|"]
    lines += [f"| {s['name']} | {s['seconds']:.1f} | {s['detail']} |" for s in data["stages"]]
    lines += [f"| total | {data['total_seconds']:.1f} | |", ""]
    cost = data.get("cost") or {}
    if "total_usd" in cost:
        lines += [f"Cost (cost model): training ${cost['training_usd']:.2f} ({cost['training_minutes']} min on "
                  f"{cost['training_instance_type']}), endpoint ${cost['endpoint_usd']:.2f} "
                  f"({cost['endpoint_seconds']:.0f} s on {cost['endpoint_instance_type']}), total "
                  f"${cost['total_usd']:.2f}; {cost['note']}; prices as of {cost['prices_as_of']}.", ""]
    elif cost:
        lines += [f"Cost: {cost.get('error')}", ""]
    for image in data["images"]:
        lines.append(f"- \"{image['prompt']}\": {image['status']}, seeds {image['seeds']}, files {image['files']}")
    lines += [f"- Created: stack {data['created']['stack']}, endpoint {data['created']['endpoint']}"]
    lines += [f"- Removed (--destroy): {item}" for item in data["destroyed"]]
    lines += [f"- Problem: {p}" for p in data["problems"]]
    return "\n".join(lines) + "\n"


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


# ---- the two backends ----------------------------------------------------------------------------


class AwsBackend:
    """A real account: the user's session, the deployed stack's outputs, real waits."""

    name = "aws"
    emulated = False

    def __init__(self, session: Any, config: Any, deploy_args: Sequence[str] = (),
                 run: Optional[Callable[[Sequence[str], dict[str, str]], int]] = None, root: Path = ROOT):
        self.session, self.config, self.deploy_args, self.root = session, config, list(deploy_args), root
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
        code = deploy.deploy([*self.deploy_args, "--require-approval", "never"], self.session,
                             self._run or deploy._run, dict(os.environ), self.config, self.root)
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
            self.s3().copy_object(Bucket=self.data_bucket(), Key=key,
                                  CopySource={"Bucket": copy_from[0], "Key": copy_from[1]})
        else:
            self.s3().put_object(Bucket=self.data_bucket(), Key=key, Body=body, IfNoneMatch="*")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

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
        raise ApiError(answer.status, error.get("message", answer.text), error.get("code", ""),
                       error.get("fields", []), float(retry) if retry else None)

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
    """The synthesized stack on moto with simulated SageMaker (tests/harness), in this process."""

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
        s3.put_object(Bucket=bucket, Key=SAMPLE_PREFIX + "dataset_info.json",
                      Body=json.dumps({"instance_prompt": SAMPLE_INSTANCE_PROMPT,
                                       "class_prompt": "a photo of a dog"}).encode())

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
        self.harness.clock.wait(min(seconds, 0.5))  # the emulator's time (tests/harness/clock.py): skipped when all wait

    def destroy_stack(self, say: Callable[[str], None]) -> None:
        raise RuntimeError("the emulator never deploys a stack")


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
def emulator(*, training_s: float = 2.0, endpoint_s: float = 2.0, synthesized: Any = None,
             sample_photos: Optional[dict[str, bytes]] = None) -> Iterator[EmulatorBackend]:
    """Synthesize (into a temporary folder) and create the stack on moto; yield the backend."""
    import tempfile

    from tests.harness import PipelineHarness, SageMakerSimulator, synthesize

    with mock.patch.dict(os.environ, EMULATOR_ENV), tempfile.TemporaryDirectory(prefix="emulator-synth-") as scratch:
        os.environ.pop("AWS_PROFILE", None)  # restored when the patch ends
        started = time.monotonic()
        synthesized = synthesized or synthesize(EMULATOR_CONTEXT, outdir=Path(scratch))
        with PipelineHarness(synthesized=synthesized,
                             simulator=SageMakerSimulator(training_s=training_s, endpoint_s=endpoint_s)) as h:
            h.record("emulator", f"stack {synthesized.stack_name} synthesized in {time.monotonic() - started:.1f}s "
                                 f"({len(synthesized.template['Resources'])} resources), created on the emulator")
            yield EmulatorBackend(h, sample_photos)


def main(argv: Optional[Sequence[str]] = None, session: Any = None) -> int:
    from scripts.aws_session import user_session
    from scripts.deploy import context_from, has_credentials
    from stacks.config import AppConfig

    parser = argparse.ArgumentParser(prog="python -m scripts.acceptance", description=__doc__.split("\n\n")[0])
    parser.add_argument("--emulator", action="store_true", help="run on the emulator even with AWS credentials")
    parser.add_argument("--destroy", action="store_true",
                        help="at the end, remove what the run created (endpoint, or the stack it deployed); "
                             "never the bucket or the photos")
    parser.add_argument("--destroy-previous", nargs="?", const="latest", metavar="REPORT",
                        help="run nothing: remove what an earlier run created, from its report.json "
                             "(default: the newest under --out)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the run's subfolder "
                                                                       "(default: acceptance-out/)")
    parser.add_argument("--timeout", type=float, default=TRAINING_TIMEOUT_S, help="give up following after S seconds")
    parser.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE",
                        help="configuration override, as with cdk -c (repeatable)")
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
        say(f"AWS credentials found: running on account resources in {backend.region} (this costs money: "
            "see the report's cost; --destroy removes the endpoint or stack the run created)")
        report = run_flow(backend, acceptance_plan(backend.region, now), out_dir, say=say, config=config,
                          training_timeout_s=args.timeout, destroy=args.destroy)
    else:
        say("No AWS credentials (or --emulator): running the same flow on the emulator (moto + simulated "
            "SageMaker); the report's numbers are the emulator's, not AWS's.")
        with emulator(sample_photos=draw_sample_photos()) as backend:
            report = run_flow(backend, acceptance_plan(backend.region, now), out_dir, say=say, config=config,
                              poll_s=1.0, training_timeout_s=min(args.timeout, 300), destroy=args.destroy)
    print(render_markdown(report.to_dict()), end="")
    print(f"Report: {out_dir / 'report.md'} and report.json", file=sys.stderr)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
