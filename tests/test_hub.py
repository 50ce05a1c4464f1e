"""The Hub, offline: what a dataset push would upload, presets whose local paths win over Hub repo ids, and
every Hub failure (here: offline mode, as on a machine without network) a clear error that loses nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lekiwi_drift.hub import (
    HubCheckpointError,
    HubError,
    check_repo_id,
    dataset_push_plan,
    download_checkpoint,
    preset_checkpoint,
)

pytest.importorskip("lerobot.datasets")


def _preset(tmp_path: Path, checkpoint: str) -> Path:
    shipped = Path(__file__).resolve().parents[1] / "policies" / "drift.yaml"
    text = shipped.read_text().replace("checkpoint: checkpoints/drift_small", f"checkpoint: {checkpoint}")
    text = text.replace("vlm_dir: checkpoints/small_vlm", "vlm_dir: ''")
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    return path


def test_local_directory_wins_over_a_hub_repo_of_the_same_name(tmp_path):
    from lekiwi_drift.control.preset import load_preset

    assert load_preset(_preset(tmp_path, "alice/salt_policy")).checkpoint == "hf://alice/salt_policy"
    (tmp_path / "alice" / "salt_policy").mkdir(parents=True)
    assert load_preset(_preset(tmp_path, "alice/salt_policy")).checkpoint == str(tmp_path / "alice" / "salt_policy")
    # hf:// forces the Hub; a relative path that is no repo id stays a (missing) local path.
    assert load_preset(_preset(tmp_path, "hf://alice/salt_policy@v2")).checkpoint == "hf://alice/salt_policy@v2"
    assert preset_checkpoint("../runs/x/y", tmp_path) == str((tmp_path / "../runs/x/y").resolve())


def test_hub_checkpoint_fetch_passes_repo_and_revision_and_names_failures():
    calls = []

    def fetch(**kw):
        calls.append(kw)
        return "/cache/models--alice--p/snapshots/abc"

    assert download_checkpoint("hf://alice/p@v2", download=fetch) == Path("/cache/models--alice--p/snapshots/abc")
    assert calls == [{"repo_id": "alice/p", "revision": "v2", "repo_type": "model"}]

    def offline(**kw):
        raise ConnectionError("no route to huggingface.co")

    with pytest.raises(HubCheckpointError, match=r"alice/p.*no route.*hf download alice/p") as err:
        download_checkpoint("hf://alice/p", download=offline)
    assert isinstance(err.value, FileNotFoundError)  # run/trials report it as a missing checkpoint
    with pytest.raises(HubError, match="OWNER/NAME"):
        check_repo_id("not a repo")


def test_dataset_push_plan_lists_what_lerobot_uploads(tmp_path):
    from tests.test_train_smoke import make_tiny_dataset

    root = make_tiny_dataset(tmp_path / "ds")
    (root / "images" / "observation.images.front").mkdir(parents=True, exist_ok=True)  # LeRobot's temporary PNG frames
    (root / "images" / "observation.images.front" / "frame_000000.png").write_bytes(b"x")
    (root / ".staging").mkdir()  # our recorder's staging area
    (root / ".staging" / "ep.tmp").write_bytes(b"x")

    plan = dataset_push_plan(root, "alice/salt_bottle")
    assert "meta/info.json" in plan.files and any(f.startswith("data/") for f in plan.files)
    assert sum(f.startswith("videos/") for f in plan.files) == 3  # one per camera
    assert sorted(plan.skipped) == [".staging/ep.tmp", "images/observation.images.front/frame_000000.png"]
    assert plan.bytes == sum((root / f).stat().st_size for f in plan.files) > 0
    no_video = dataset_push_plan(root, "alice/salt_bottle", push_videos=False)
    assert not any(f.startswith("videos/") for f in no_video.files)
    with pytest.raises(HubError, match="not a LeRobotDataset"):
        dataset_push_plan(tmp_path, "alice/x")


def test_offline_push_and_fetch_fail_clearly_and_keep_the_data(tmp_path, tiny_checkpoint):
    """Real huggingface_hub calls in offline mode (a subprocess: the mode is read at import)."""
    from tests.test_train_smoke import make_tiny_dataset

    root = make_tiny_dataset(tmp_path / "ds")
    script = textwrap.dedent(
        f"""
        from lekiwi_drift.hub import HubError, push_checkpoint, push_dataset
        from lekiwi_drift.policy.checkpoint import resolve_checkpoint_dir
        for name, call in [
            ("dataset", lambda: push_dataset({str(root)!r}, "alice/salt_bottle")),
            ("checkpoint", lambda: push_checkpoint({str(tiny_checkpoint / "model")!r}, "alice/salt_policy")),
            ("fetch", lambda: resolve_checkpoint_dir("hf://alice/salt_policy")),
        ]:
            try:
                call()
                print(name, "NO ERROR")
            except HubError as exc:
                print(name, "|", exc)
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=180)
    lines = {
        ln.split(" ", 1)[0]: ln
        for ln in out.stdout.splitlines()
        if ln.split(" ", 1)[0] in ("dataset", "checkpoint", "fetch")
    }
    assert set(lines) == {"dataset", "checkpoint", "fetch"}, out.stdout + out.stderr
    assert "alice/salt_bottle" in lines["dataset"] and "complete on disk" in lines["dataset"]
    assert "hf upload alice/salt_policy" in lines["checkpoint"]
    assert "hf download alice/salt_policy" in lines["fetch"]

    from lerobot.datasets import LeRobotDataset

    assert LeRobotDataset("local/tiny_lekiwi", root=root).num_episodes == 2  # nothing lost


def test_push_options_are_checked_before_anything_starts(tmp_path, capsys):
    from lekiwi_drift.cli.main import main

    assert main(["teleop", "--sim", "--record", str(tmp_path / "d"), "--push-to-hub", "--no-keyboard"]) != 0
    assert "--push-to-hub needs --record DIR and --repo-id" in capsys.readouterr().err
    argv = ["teleop", "--sim", "--record", str(tmp_path / "d"), "--push-to-hub", "--repo-id", "bad id"]
    assert main([*argv, "--no-keyboard"]) != 0
    assert "OWNER/NAME" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()  # nothing recorded
    with pytest.raises(SystemExit, match="--push-to-hub needs --repo-id"):
        main(
            [
                "train",
                "--objective",
                "drift",
                "--dataset",
                str(tmp_path),
                "--output",
                str(tmp_path / "o"),
                "--push-to-hub",
            ]
        )
