"""The offline rehearsal (scripts/rehearse.py), run through its entry point in this process."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone

from PIL import Image

from scripts import rehearse


def test_rehearsal_runs_the_whole_flow_and_saves_placeholders_in_a_new_folder(tmp_path, capsys):
    earlier = tmp_path / "20000101T000000Z"
    earlier.mkdir()
    (earlier / "generation-0-seed42.jpg").write_bytes(b"the user's own file")

    code = rehearse.main(["--json", "--out", str(tmp_path), "--training-seconds", "1", "--endpoint-seconds", "1"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["ok"] is True, report["summary"]

    steps = [(e["component"], e["what"]) for e in report["timeline"]]
    offsets = [e["t"] for e in report["timeline"]]
    assert offsets == sorted(offsets) and offsets[0] == 0.0

    def first(component: str, starts: str) -> int:
        return next(i for i, (c, w) in enumerate(steps) if c == component and w.startswith(starts))

    order = [
        first("s3", "PutObject datasets/rehearsal-sample/sample1.jpg"),
        first("training-sm", "execution rehearsal-sample-"),
        first("sagemaker (simulated)", "training-started"),
        first("sagemaker (simulated)", "training-completed"),
        first("deploy-sm", "execution deploy-"),
        first("sagemaker (simulated)", "endpoint-creating"),
        first("sagemaker (simulated)", "endpoint-in-service"),
        first("sagemaker (simulated)", "invoke-async-queued"),
        first("sagemaker (simulated)", "async-invocation-succeeded"),
        first("sns", "PipelineInferenceSucceeded"),
        # POST /generations waits for its result (wait=20), so its record follows the model's answer
        first("api", "POST /generations -> 200 succeeded"),
    ]
    assert order == sorted(order), steps
    # The flow generates as soon as the API shows the model live; the notification may come just after.
    assert first("sns", "notification: DreamBooth: new model is live") > order[5]
    assert ("deploy-sm", next(w for c, w in steps if c == "deploy-sm" and w.endswith("succeeded"))) in steps
    assert sum(1 for c, w in steps if w.startswith("async-invocation-succeeded")) == 2
    assert any(c == "api" and "succeeded" in w for c, w in steps)

    summary = "\n".join(report["summary"])
    assert "SageMaker is emulated" in summary and "placeholders" in summary
    assert "quiet window 2s" in summary and "simulated training 1s" in summary

    out = tmp_path / report["out_dir"].rsplit("/", 1)[1]
    assert out != earlier and out.parent == tmp_path
    assert (earlier / "generation-0-seed42.jpg").read_bytes() == b"the user's own file"
    images = sorted(out.glob("prompt-1/*.jpg"))
    assert [p.name for p in images] == ["0.jpg", "1.jpg"]
    for path in images:
        assert Image.open(io.BytesIO(path.read_bytes())).format == "JPEG"
    # The acceptance flow's report, as `make acceptance` writes it, says the numbers are emulated
    flow = json.loads((out / "report.json").read_text())
    assert flow["emulated"] is True and flow["images"][0]["seeds"] == [42, 43]
    assert "SageMaker is emulated" in (out / "report.md").read_text()
    saved = json.loads((out / "timeline.json").read_text())
    assert saved["timeline"] == report["timeline"] and saved["summary"] == report["summary"]
    assert "SageMaker simulated" in (out / "timeline.txt").read_text()


def test_each_run_gets_a_folder_of_its_own(tmp_path):
    moment = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)
    first = rehearse.new_out_dir(tmp_path, moment)
    (first / "keep.txt").write_text("mine")
    second = rehearse.new_out_dir(tmp_path, moment)
    assert (first.name, second.name) == ("20261125T100000Z", "20261125T100000Z-2")
    assert (first / "keep.txt").read_text() == "mine" and list(second.iterdir()) == []
