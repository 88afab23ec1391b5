"""`dreambooth`: the user's command line. Every command has --help; --json prints machine-readable output.

Commands: preflight, cost (before a deploy); upload, status, models, use, retrain, generate, web (with a
deployed stack, found from its CloudFormation outputs: BucketName, ApiUrl, ApiKeyId).

As with the AWS CLI, the global options (--profile, --region, --stack, --json, -c) go before or
after the command. Exit codes: EXIT_CODES below (docs/cli.md's table; tests/cli check each one).
Progress goes to stderr; results (text, or JSON with --json) to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from botocore.exceptions import BotoCoreError, ClientError

from scripts import costs
from scripts.aws_session import AwsAccessProblem, access_problem, silence_jsii, user_session
from scripts.cli import dataset_upload, stack_outputs
from scripts.cli.api_client import ApiClient, ApiError, ApiUnreachable
from scripts.cli.follow import Clock, Follower, Outcome, elapsed_text
from scripts.cli.generation import Generator, Saved, TimedOut, save_images
from scripts.cli.progress import ByteProgress
from scripts.context import ROOT, context_from
from stacks.config import AppConfig, ConfigError

silence_jsii()  # before preflight or the JumpStart lock import aws_cdk (jsii starts a Node process)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_DEPLOYED = 0, 1, 2, 3
EXIT_INTERRUPTED = 130
EXIT_CODES = {
    EXIT_OK: "done",
    EXIT_FAILED: "the operation failed (dataset refused, training, deployment or generation failed, timed out, "
    "a check failed, an API error)",
    EXIT_USAGE: "bad usage or configuration, or AWS not usable as set up: bad option or request field; no, "
    "unknown or expired credentials or profile; no or unknown region; no network",
    EXIT_NOT_DEPLOYED: "the stack is not deployed (in this region) or lacks an output the command needs",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}
TRAINING_TIMEOUT_S = 4 * 3600
SWITCH_TIMEOUT_S = 90 * 60
# Long enough for a request that waits for an instance to start from zero (up to 10+ minutes).
GENERATE_TIMEOUT_S = 1800
POLL_S = 15.0


def _jumpstart_lock() -> Any:
    # Imported on demand: the module also holds CDK constructs, and importing aws_cdk starts a Node
    # process (about a second) that the API commands do not need.
    from stacks.training.jumpstart_lock import JumpStartLock

    return JumpStartLock.load()


def _config(args: argparse.Namespace) -> AppConfig:
    context_args = [item for pair in (args.context or []) for item in ("-c", pair)]
    return AppConfig.load(context_from(context_args, ROOT).get, {})


def cmd_preflight(args: argparse.Namespace, session: Any, clock: Any = None) -> int:
    from scripts.cli import preflight

    checks = preflight.run(session, _config(args), _jumpstart_lock())
    if args.json:
        print(json.dumps({"ok": all(c.ok for c in checks), "checks": [c.to_dict() for c in checks]}, indent=2))
    else:
        print(preflight.render(checks))
    if any(not c.ok and c.name in preflight.ACCESS_CHECKS for c in checks):
        return EXIT_USAGE  # credentials or region: the caller's set-up, as in every other command
    return EXIT_OK if all(c.ok for c in checks) else EXIT_FAILED


def cmd_cost(args: argparse.Namespace, session: Any, clock: Any = None) -> int:
    config = _config(args)
    region = args.region or session.region_name or "us-east-1"  # an explicit --region wins; no AWS call
    try:
        result = costs.estimate(
            costs.Pricing.load(),
            region,
            config.training.instance_type,
            config.serving.instance_type,
            args.training_minutes,
        )
    except costs.NoPrice as error:
        print(f"Cannot estimate: {error}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return EXIT_OK
    print(
        f"Region {result.region}, prices as of {result.prices_as_of} (on-demand list prices; see "
        "scripts/pricing_table.json)\n"
        f"One training run:  ${result.training_run_usd:.2f}  "
        f"({result.training_minutes:g} min on {result.training_instance_type})\n"
        f"Endpoint:          ${result.endpoint_hourly_usd:.2f} per hour, ${result.endpoint_daily_usd:.2f} per day "
        f"while it runs ({result.endpoint_instance_type})"
    )
    return EXIT_OK


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2, default=str) if args.json else text)


def _stack_name(args: argparse.Namespace) -> str:
    return args.stack or _config(args).stack_name


def _deployment(args: argparse.Namespace, session: Any) -> stack_outputs.Deployment:
    return stack_outputs.find(session, _stack_name(args))


def _client(args: argparse.Namespace, session: Any, deployment: Optional[stack_outputs.Deployment] = None) -> ApiClient:
    return stack_outputs.api_client(session, deployment or _deployment(args, session))


def _outcome_exit(args: argparse.Namespace, outcome: Outcome, extra: dict[str, Any]) -> int:
    model = outcome.model or {}
    if outcome.ok:
        text = (
            f"Model {model.get('model_id')} is live after {elapsed_text(outcome.elapsed_s)}. "
            f'Use its prompt phrase in your prompts: "{model.get("instance_prompt", "")}"'
        )
    else:
        text = f"Failed: {outcome.reason}"
        if not args.json:
            print(text, file=sys.stderr)
    _emit(args, {**extra, **outcome.to_dict()}, text if outcome.ok else "")
    return EXIT_OK if outcome.ok else EXIT_FAILED


def cmd_upload(args: argparse.Namespace, session: Any, clock: Clock) -> int:
    rules = dataset_upload.rules()
    problem = rules.dataset_name_problem(args.name)
    if problem:
        print(f"--name: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if not Path(args.directory).is_dir():
        print(f"DIR: {args.directory} is not a folder", file=sys.stderr)
        return EXIT_USAGE
    settings = dataset_upload.settings_from_config(_config(args), _jumpstart_lock().hyperparameters)
    try:
        plan = dataset_upload.prepare(
            Path(args.directory),
            args.name,
            prompt=args.prompt,
            class_prompt=args.class_prompt,
            settings=settings,
            resize=args.resize,
        )
    except dataset_upload.DatasetRefused as refused:
        if args.json:
            print(
                json.dumps(
                    {"ok": False, "uploaded": [], "reasons": refused.reasons, "warnings": refused.warnings}, indent=2
                )
            )
        else:
            print("The pipeline would refuse this dataset; nothing was uploaded:", file=sys.stderr)
            for reason in refused.reasons:
                print(f"  - {reason}", file=sys.stderr)
            for warning in refused.warnings:
                print(f"  (warning) {warning}", file=sys.stderr)
        return EXIT_FAILED
    try:
        return _upload_plan(args, session, clock, plan)
    finally:
        plan.cleanup()


def _upload_plan(args: argparse.Namespace, session: Any, clock: Clock, plan: dataset_upload.Plan) -> int:
    for warning in plan.warnings:
        _say(f"warning: {warning}")
    summary = {
        "ok": True,
        "dataset": plan.dataset,
        "images": [name for name, _ in plan.images],
        "warnings": plan.warnings,
        "resized": plan.resized,
        "instance_prompt": plan.instance_prompt,
        "class_prompt": plan.class_prompt,
    }
    _say(
        f"{len(plan.images)} images{' (cropped and resized to 512x512)' if plan.resized else ''}, "
        f'prompt "{plan.instance_prompt}"'
    )
    if args.dry_run:
        _emit(
            args,
            {**summary, "uploaded": []},
            f"Dataset {plan.dataset} passes the pipeline's checks (dry run: nothing uploaded).",
        )
        return EXIT_OK

    deployment = _deployment(args, session)
    bucket = deployment.bucket
    client = known = None
    if not args.no_wait:  # before uploading: the API must answer, and older models are not ours
        client = _client(args, session, deployment)
        known = {m["model_id"] for m in client.models().get("models", [])}
    progress = ByteProgress(plan.total_bytes, len(plan.images) + 1, sys.stderr, tty=sys.stderr.isatty())
    try:
        result = dataset_upload.upload(plan, session.client("s3"), bucket, progress, say=progress.say)
    except dataset_upload.DatasetExists as error:
        progress.close()
        print(str(error), file=sys.stderr)
        return EXIT_FAILED
    except dataset_upload.UploadFailed as failed:
        progress.close()
        print(_upload_failed_text(bucket, plan, failed), file=sys.stderr)
        return EXIT_INTERRUPTED if failed.interrupted else EXIT_FAILED
    progress.close()
    uploaded = result.keys
    summary.update(bucket=bucket, uploaded=uploaded, staging_prefix=result.staging, staging_left=result.staging_left)
    prefix = f"s3://{bucket}/{dataset_upload.dataset_prefix(plan.dataset)}"
    if result.staging_left:
        _say(
            f"warning: could not delete {len(result.staging_left)} staging objects under "
            f"s3://{bucket}/{result.staging}; they trigger nothing and are safe to delete"
        )
    if result.interrupted:
        if args.json:
            _emit(args, summary, "")
        print(
            f"Interrupted: the upload finished first ({len(uploaded)} files in {prefix}); the pipeline "
            "goes on: `dreambooth status`.",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if args.no_wait:
        _emit(
            args,
            summary,
            f"Uploaded {len(uploaded)} files to {prefix}. Training starts once the pipeline's "
            "quiet window passes; follow it with `dreambooth status`.",
        )
        return EXIT_OK
    _say(
        f"Uploaded {len(uploaded)} files to {prefix}; following the pipeline (Ctrl-C stops following, not the training)"
    )
    follower = Follower(client, timeout_s=args.timeout, poll_s=args.poll_seconds, clock=clock, say=_say)
    try:
        outcome = follower.training(plan.dataset, known)
    except KeyboardInterrupt:
        print(
            "Stopped following; the upload is complete and the pipeline goes on: `dreambooth status`.", file=sys.stderr
        )
        return EXIT_INTERRUPTED
    return _outcome_exit(args, outcome, summary)


def _upload_failed_text(bucket: str, plan: dataset_upload.Plan, failed: dataset_upload.UploadFailed) -> str:
    what = "Interrupted" if failed.interrupted else f"Upload failed ({failed.cause})"
    prefix = f"s3://{bucket}/{dataset_upload.dataset_prefix(plan.dataset)}"
    staging = f"s3://{bucket}/{failed.staging}"
    leftovers = (
        f"Up to {len(failed.staged)} staging objects of this run may remain under {staging} (outside "
        f"datasets/: they trigger nothing and are safe to delete: aws s3 rm --recursive {staging})."
    )
    if failed.phase == "staging":
        return (
            f"{what} while uploading to the staging area: nothing was written under {prefix}, so no training "
            f"starts. {leftovers} Nothing was deleted. Run the same command again to upload."
        )
    return (
        f"{what} while copying into {prefix}: {len(failed.copied)} of {len(plan.images)} images are there, "
        f"without dataset_info.json; the pipeline judges what is there once its quiet window passes. "
        f"{leftovers} Nothing was deleted or overwritten."
    )


def cmd_status(args: argparse.Namespace, session: Any, clock: Clock) -> int:
    status = _client(args, session).status()
    endpoint = status.get("endpoint") or {}
    lines = [
        f"Endpoint {endpoint.get('name', '?')}: {endpoint.get('state', 'unknown')}"
        + (f" ({endpoint['failure_reason']})" if endpoint.get("failure_reason") else "")
    ]
    live = status.get("live_model")
    if live:
        lines.append(
            f"Live model: {live.get('model_id')} (dataset {live.get('dataset')}); prompt phrase: "
            f'"{live.get("instance_prompt", "")}"'
        )
    else:
        lines.append("Live model: none yet")
    training = status.get("training") or []
    lines.append("In progress: " + (", ".join(f"{m.get('model_id')} {m.get('status')}" for m in training) or "nothing"))
    _emit(args, status, "\n".join(lines))
    return EXIT_OK


def cmd_web(args: argparse.Namespace, session: Any, clock: Clock) -> int:
    import webbrowser

    deployment = _deployment(args, session)
    url, key = deployment.api_url, stack_outputs.api_key(session, deployment)
    if key is None:
        _emit(
            args,
            {"url": url, "api_key": None, "opened": False},
            f"Web page: {url}\nThis stack uses apiAuth=iam: the page cannot sign requests; deploy with "
            "apiAuth=apiKey (the default) to use it.",
        )
        return EXIT_FAILED
    opened = bool(args.open) and webbrowser.open(url)
    _emit(
        args,
        {"url": url, "api_key": key, "opened": opened},
        f"Web page: {url}\nAPI key:  {key}\n(paste the key into the page once; it stays in that browser)"
        + (
            "\nOpened in your browser."
            if opened
            else "\nCould not open a browser; open the address yourself."
            if args.open
            else ""
        ),
    )
    return EXIT_OK


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows)


def cmd_models(args: argparse.Namespace, session: Any, clock: Clock) -> int:
    answer = _client(args, session).models()
    models = answer.get("models", [])
    rows = [["MODEL", "DATASET", "STATUS", "LIVE", "CREATED", "PROMPT / REASON"]]
    for m in models:
        rows.append(
            [
                m.get("model_id", ""),
                m.get("dataset", ""),
                m.get("status", ""),
                "*" if m.get("live") else "",
                m.get("created_at", ""),
                m.get("failure_reason") or m.get("instance_prompt", ""),
            ]
        )
    _emit(args, answer, _table(rows) if models else "No models yet: upload a dataset with `dreambooth upload`.")
    return EXIT_OK


def cmd_use(args: argparse.Namespace, session: Any, clock: Clock) -> int:
    client = _client(args, session)
    before = client.model(args.model)
    status, answer = client.switch_live(args.model)
    if status == 200 or args.no_wait:
        state = answer.get("state")
        _emit(
            args,
            answer,
            f"Model {args.model} is already live."
            if state == "already_live"
            else f"Deployment of {args.model} started; follow it with `dreambooth status`.",
        )
        return EXIT_OK
    _say(f"Deploying {args.model}; the current model keeps serving until it is in service")
    follower = Follower(client, timeout_s=args.timeout, poll_s=args.poll_seconds, clock=clock, say=_say)
    return _outcome_exit(args, follower.switch(args.model, before), {"switch": answer})


def cmd_retrain(args: argparse.Namespace, session: Any, clock: Clock) -> int:
    client = _client(args, session)
    before = client.model(args.model)
    _, answer = client.retrain(args.model)
    if args.no_wait:
        _emit(
            args,
            answer,
            f"Retrain of {args.model} started (training job {answer.get('training_job_name')}); "
            "follow it with `dreambooth status`.",
        )
        return EXIT_OK
    _say(
        f"Retraining {args.model} on the files it was first trained on (job {answer.get('training_job_name')}); "
        "nothing is uploaded again"
    )
    follower = Follower(client, timeout_s=args.timeout, poll_s=args.poll_seconds, clock=clock, say=_say)
    return _outcome_exit(args, follower.switch(args.model, before), {"retrain": answer})


def cmd_generate(args: argparse.Namespace, session: Any, clock: Clock) -> int:
    client = _client(args, session)
    request: dict[str, Any] = {"prompt": args.prompt, "num_images": args.num_images}
    for name in ("seed", "negative_prompt", "steps", "guidance_scale", "width", "height"):
        if getattr(args, name) is not None:
            request[name] = getattr(args, name)
    generator = Generator(client, timeout_s=args.timeout, clock=clock, say=_say)
    try:
        generation = generator.run(request)
    except TimedOut as error:
        print(f"Timed out: {error}", file=sys.stderr)
        return EXIT_FAILED
    out_dir = Path(args.out) if args.out else Path("generated") / generation["id"]
    saved = Saved(generation, save_images(client, generation, out_dir))
    if not saved.ok:
        print(f"Generation {generation['id']} failed: {generation.get('error') or 'no reason given'}", file=sys.stderr)
    _emit(args, saved.to_dict(), "\n".join(str(path) for path in saved.paths))
    return EXIT_OK if saved.ok else EXIT_FAILED


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _follow_options(command: argparse.ArgumentParser, no_wait_help: str, timeout_s: int, after: str = "") -> None:
    """--no-wait, --timeout and --poll-seconds of a command that follows the pipeline."""
    command.add_argument("--no-wait", action="store_true", help=no_wait_help)
    command.add_argument(
        "--timeout",
        type=_positive,
        default=timeout_s,
        metavar="S",
        help=f"stop following after S seconds (default {timeout_s}){after}",
    )
    command.add_argument(
        "--poll-seconds",
        type=_positive,
        default=POLL_S,
        metavar="S",
        help=f"seconds between checks (default {POLL_S:g})",
    )


# --- the command line -------------------------------------------------------------------------------

EXAMPLES = {
    None: """  dreambooth preflight
  dreambooth --profile work --region eu-west-1 status
  dreambooth upload ~/photos/doppler --name doppler --prompt "a photo of sks dog" --resize
  dreambooth generate "a photo of sks dog on the beach" -n 4 --seed 42
  dreambooth web --open""",
    "preflight": """  dreambooth preflight
  dreambooth preflight --region eu-west-1 --json
  dreambooth preflight -c endpointMaxInstances=3""",
    "cost": """  dreambooth cost
  dreambooth cost --training-minutes 45 --json""",
    "upload": """  dreambooth upload ~/photos/doppler --name doppler --prompt "a photo of sks dog"
  dreambooth upload ~/photos/doppler --name doppler --resize --dry-run
  dreambooth upload ./cat --name cat --class-prompt "a photo of a cat" --no-wait""",
    "status": """  dreambooth status
  dreambooth status --region eu-west-1 --json""",
    "models": """  dreambooth models
  dreambooth models --stack MyDreamBooth --json""",
    "use": """  dreambooth use doppler-20261125103000
  dreambooth use doppler-20261125103000 --no-wait""",
    "retrain": """  dreambooth retrain doppler-20261125103000
  dreambooth retrain doppler-20261125103000 --no-wait --json""",
    "generate": """  dreambooth generate "a photo of sks dog on the sea"
  dreambooth generate "a photo of sks dog with a hat" -n 4 --seed 42 --out ./hats""",
    "web": """  dreambooth web
  dreambooth web --open
  dreambooth web --json""",
}


def _epilog(command: Optional[str]) -> str:
    # Every command has examples (tests/cli/test_cli_conventions.py checks each one's --help).
    text = "Examples:\n" + EXAMPLES.get(command, f"  dreambooth {command} --help")
    if command is None:
        codes = "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES.items())
        text = f"Exit codes:\n{codes}\n\n" + text
    return text


def _version() -> str:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


# Global options, as the AWS CLI has them: accepted before or after the command. The command's copy
# writes to the same name only when given (SUPPRESS), so `dreambooth --json status` and
# `dreambooth status --json` mean the same; -c after the command adds to -c before it.
def _global_options(parser: argparse.ArgumentParser, *, after_command: bool) -> None:
    default = {"default": argparse.SUPPRESS} if after_command else {}
    parser.add_argument(
        "--json",
        action="store_true",
        help="print JSON instead of text (progress goes to stderr)",
        **({"default": argparse.SUPPRESS} if after_command else {"default": False}),
    )
    parser.add_argument(
        "--profile", metavar="NAME", help="AWS profile to use (default: AWS_PROFILE, else default)", **default
    )
    parser.add_argument(
        "--region",
        metavar="REGION",
        help="AWS region (default: AWS_REGION / AWS_DEFAULT_REGION, else the profile's)",
        **default,
    )
    parser.add_argument(
        "--stack", metavar="NAME", help="CloudFormation stack to use (default: stackName from cdk.json / -c)", **default
    )
    parser.add_argument(
        "-c",
        "--context",
        action="append",
        metavar="KEY=VALUE",
        dest="context_after" if after_command else "context",
        help="configuration override, as with cdk -c (repeatable)",
    )


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, after_command=True)
    top = argparse.ArgumentParser(
        prog="dreambooth", description=__doc__.split("\n\n")[0], epilog=_epilog(None), formatter_class=_Formatter
    )
    top.add_argument("--version", action="version", version=f"dreambooth {_version()}")
    _global_options(top, after_command=False)
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, description: str, run: Any) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=help_text,
            description=description,
            parents=[common],
            epilog=_epilog(name),
            formatter_class=_Formatter,
        )
        sub.set_defaults(run=run)
        return sub

    command(
        "preflight",
        "check credentials, region, bucket and SageMaker quotas before a deploy",
        "Check credentials and region, S3 bucket quota headroom, SageMaker quotas for the "
        "configured training and endpoint instance types (and that they are offered in the "
        "region), and that the JumpStart lock file covers the region. Changes nothing.",
        cmd_preflight,
    )
    cost = command(
        "cost",
        "estimated cost of a training run and of the endpoint per hour",
        "Estimate the cost of one training run and of the endpoint per hour for the configured "
        "instance types, from the dated pricing table in scripts/pricing_table.json, for --region "
        "(default: the session's region, else us-east-1). Makes no AWS call.",
        cmd_cost,
    )
    cost.add_argument(
        "--training-minutes",
        type=float,
        metavar="MIN",
        help=f"length of a training run (default {costs.DEFAULT_TRAINING_MINUTES:g})",
    )

    upload = command(
        "upload",
        "check a folder of photos, upload it as a dataset, follow the training",
        "Check DIR with the pipeline's own dataset rules (dreambooth_shared/dataset_rules.py): a folder the "
        "pipeline would refuse is refused here and nothing is uploaded; other files are skipped with a "
        "warning. Then upload the images to datasets/NAME/ in the stack's bucket, write dataset_info.json "
        "last, and follow the pipeline until the new model is live (exit 0) or failed (exit 1). A dataset "
        "name that already has files in the bucket is refused: nothing in the bucket is ever overwritten "
        "or deleted.",
        cmd_upload,
    )
    upload.add_argument("directory", metavar="DIR", help="folder with 3-100 JPEG or PNG photos")
    upload.add_argument("--name", required=True, help="dataset name: " + dataset_upload.rules().DATASET_NAME_RULE)
    upload.add_argument(
        "--prompt",
        help='instance prompt, e.g. "a photo of sks dog" (default: DIR\'s '
        "dataset_info.json, else defaultInstancePrompt)",
    )
    upload.add_argument("--class-prompt", help='class prompt, e.g. "a photo of a dog"')
    upload.add_argument(
        "--resize",
        action="store_true",
        help="centre-crop and resize the images to 512x512 (copies in a temporary folder; your files are not changed)",
    )
    upload.add_argument("--dry-run", action="store_true", help="only check the folder; no AWS call")
    _follow_options(upload, "return once uploaded, without following", TRAINING_TIMEOUT_S, "; training goes on")

    command(
        "status",
        "endpoint state, live model, trainings in progress",
        "Show GET /status: the endpoint's state, the live model and its prompt phrase, and the models "
        "still validating, training or deploying.",
        cmd_status,
    )
    command(
        "models",
        "list the trained models (newest first)",
        "List GET /models as a table (newest first; * marks the live model).",
        cmd_models,
    )
    use = command(
        "use",
        "put another trained model live",
        "Switch the live model (PUT /models/live) and follow until it serves. The current model "
        "keeps serving until the new one is in service; a failed switch leaves it live (exit 1).",
        cmd_use,
    )
    use.add_argument("model", metavar="MODEL", help="model id, as listed by `dreambooth models`")
    _follow_options(use, "return once the deployment started", SWITCH_TIMEOUT_S)

    retrain = command(
        "retrain",
        "train a failed model again on the same files (no capacity, spot, internal error)",
        "Run a training that failed for a transient reason (no capacity, a spot interruption, an internal "
        "SageMaker error) again on the same files (POST /models/MODEL/retrain): nothing is uploaded again. "
        "Follows until the model is live (exit 0) or failed (exit 1). A model refused as an invalid dataset, "
        "or failed for a reason a retry would not fix, is refused (exit 1): fix it and upload again.",
        cmd_retrain,
    )
    retrain.add_argument("model", metavar="MODEL", help="model id, as listed by `dreambooth models`")
    _follow_options(retrain, "return once the retrain started", TRAINING_TIMEOUT_S, "; training goes on")

    generate = command(
        "generate",
        "make images with the live model and save them",
        "Ask the API for images (POST /generations), wait for them, download them into --out (default "
        "./generated/<id>/) without overwriting any file, and print their paths. While the endpoint is "
        "being created, updated or woken up (503 with Retry-After) it waits and retries until --timeout.",
        cmd_generate,
    )
    generate.add_argument("prompt", metavar="PROMPT", help="what to draw; include the model's prompt phrase")
    generate.add_argument("-n", "--num-images", type=int, default=1, metavar="N", help="1-4 images (default 1)")
    generate.add_argument(
        "--seed",
        type=int,
        help="image i uses (seed + i) mod 2^32: every seed shown can be given back (default: random)",
    )
    generate.add_argument("--negative-prompt", help="what to avoid")
    generate.add_argument("--steps", type=int, help="denoising steps, 1-150 (default 50)")
    generate.add_argument("--guidance-scale", type=float, help="0-30 (default 7.5)")
    generate.add_argument("--width", type=int, help="256-1024, multiple of 8 (default 512)")
    generate.add_argument("--height", type=int, help="256-1024, multiple of 8 (default 512)")
    generate.add_argument("--out", metavar="DIR", help="folder for the images (default ./generated/<id>/)")
    generate.add_argument(
        "--timeout",
        type=_positive,
        default=GENERATE_TIMEOUT_S,
        metavar="S",
        help=f"give up after S seconds (default {GENERATE_TIMEOUT_S}: starting an instance from "
        "zero takes up to 10 minutes or more)",
    )

    web = command(
        "web",
        "print the web page's address and the API key (--open: open it in the browser)",
        "Print the address of the web page (the ApiUrl stack output) and the API key to paste into "
        "it once (read with API Gateway GetApiKey). The page needs apiAuth=apiKey.",
        cmd_web,
    )
    web.add_argument("--open", action="store_true", help="also open the page in the default browser")
    return top


def _parse(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    args = parser().parse_args(argv)
    args.context = (args.context or []) + (getattr(args, "context_after", None) or [])
    return args


def main(argv: Optional[Sequence[str]] = None, session: Any = None, clock: Optional[Clock] = None) -> int:
    args = _parse(argv)
    try:
        session = session or user_session(args.profile, args.region)
        return args.run(args, session, clock or Clock())
    except ConfigError as error:
        print(f"Configuration error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except stack_outputs.NotDeployed as error:
        print(f"Not deployed: {error}", file=sys.stderr)
        return EXIT_NOT_DEPLOYED
    except ApiError as error:
        print(f"API error: {error}", file=sys.stderr)
        return EXIT_USAGE if error.status == 400 else EXIT_FAILED
    except ApiUnreachable as error:
        print(f"API not reachable (check the network): {error}", file=sys.stderr)
        return EXIT_USAGE
    except (AwsAccessProblem, ClientError, BotoCoreError) as error:
        problem = access_problem(error)
        if problem:
            print(f"AWS access: {problem}", file=sys.stderr)
            return EXIT_USAGE
        print(f"AWS error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as error:  # a local file or folder (e.g. --out names a file)
        print(f"File error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
