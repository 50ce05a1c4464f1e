"""`lekiwi-drift parity`: the shipped drift preset passes on a small sim recording, a preset with two
camera keys swapped is flagged and named, and the cause detection works on synthetic images."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import json
import math

import numpy as np
import pytest
import yaml

pytest.importorskip("lerobot.datasets")

from lekiwi_drift.control import parity
from lekiwi_drift.control import parity_checks as checks
from lekiwi_drift.robots.features import STATE_KEYS


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    """One 3 s scripted-expert episode at 128x96 (90 frames), recorded over the wire like real demos,
    with the drift preset's task so the language tokens can agree."""
    from lekiwi_drift.cli.main import main
    from lekiwi_drift.control.preset import load_preset

    root = tmp_path_factory.mktemp("parity") / "demos"
    argv = [
        "teleop",
        "--sim",
        "--teleop",
        "scripted",
        "--clock",
        "lockstep",
        "--record",
        str(root),
        "--episodes",
        "1",
        "--size",
        "128x96",
        "--episode-time",
        "3",
        "--no-keyboard",
        "--task",
        load_preset("drift").task,
    ]
    assert main(argv) == 0
    return root


def test_shipped_drift_preset_passes(small_dataset, tmp_path, capsys):
    from lekiwi_drift.cli.main import main

    out_json = tmp_path / "report.json"
    rc = main(["parity", "--policy", "drift", "--dataset", str(small_dataset), "--json", str(out_json)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "parity OK" in out and "open-loop action error" in out
    report = json.loads(out_json.read_text())
    assert report["ok"] and report["findings"] == []
    assert report["images"], "no camera compared"
    for img in report["images"]:
        # The wire's JPEG q90 is the only difference: a few grey levels on average.
        assert img["ok"] and img["mean_abs"] < checks.IMAGE_MEAN_TOL, img
        assert img["best_match"] == img["key"]
    assert report["state"]["max_abs"] <= checks.STATE_TOL and report["tokens_equal"]
    action = report["action"]
    assert action["names"] == list(STATE_KEYS) and action["steps"] > 0
    assert len(action["nmse"]) == len(STATE_KEYS) and all(math.isfinite(v) for v in action["nmse"])

    # Reproducible: the policy's noise is seeded, so a second run gives the same action error.
    rc = main(
        ["parity", "--policy", "drift", "--dataset", str(small_dataset), "--episodes", "0", "--json", str(out_json)]
    )
    capsys.readouterr()
    assert rc == 0 and json.loads(out_json.read_text())["action"]["nmse"] == action["nmse"]


def test_swapped_cameras_are_flagged(small_dataset, tmp_path, capsys):
    from lekiwi_drift.cli.main import main
    from lekiwi_drift.control.preset import load_preset

    base = load_preset("drift")
    data = yaml.safe_load(open(base.source))
    # Paths in a preset are relative to its file: this one lives in tmp_path, so make them absolute.
    data["checkpoint"] = base.checkpoint
    if base.vlm_dir:
        data["vlm_dir"] = base.vlm_dir
    cameras = base.camera_map(parity.dataset_cameras(parity.open_dataset(small_dataset)))
    cameras = {cam: key.removeprefix(parity.IMAGE_PREFIX) for cam, key in cameras.items()}
    cameras["front"], cameras["wrist"] = cameras["wrist"], cameras["front"]
    data["cameras"] = cameras
    swapped = tmp_path / "swapped.yaml"
    swapped.write_text(yaml.safe_dump(data))

    rc = main(["parity", "--policy", str(swapped), "--dataset", str(small_dataset), "--no-actions", "--every", "30"])
    out = capsys.readouterr().out
    assert rc == 1, out
    assert "parity FAILED" in out and "camera keys swapped" in out
    assert "the deploy image for observation.images.wrist is the training image of observation.images.front" in out
    assert "the deploy image for observation.images.front is the training image of observation.images.wrist" in out
    assert "set `front: front`" in out  # the fix names the mapping to write


def test_bad_arguments(tmp_path, capsys):
    from lekiwi_drift.cli.main import main

    assert main(["parity", "--dataset", str(tmp_path / "nope")]) == 2
    assert "no LeRobotDataset" in capsys.readouterr().err
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "info.json").write_text("{}")
    assert main(["parity", "--policy", "no_such_preset", "--dataset", str(tmp_path)]) == 2
    assert "no_such_preset" in capsys.readouterr().err


def _scene(seed: int, h: int = 24, w: int = 32):
    import torch

    # Smooth random images: distinct per seed, colours differ per channel, like real camera frames.
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, 4, 4, generator=g)
    return torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)


def test_cause_detection_on_synthetic_images():
    front, wrist = _scene(1), _scene(2)
    train = {"observation.images.front": front, "observation.images.wrist": wrist}
    jpeg_like = front + 0.005 * (_scene(3) - 0.5)  # a few grey levels of noise: passes

    def cause(key, deploy):
        cands = checks.image_candidates(deploy, train)
        return checks.diagnose_image(
            key, checks.mean_abs(deploy, train[key]), cands, train[key].shape[-2:], deploy.shape[-2:]
        )

    assert cause("observation.images.front", jpeg_like) is None
    swap = cause("observation.images.front", wrist)
    assert swap.startswith("camera keys swapped") and "observation.images.wrist" in swap
    bgr = cause("observation.images.front", front.flip(1))
    assert bgr.startswith("colour order")
    size = cause("observation.images.front", _scene(1, 48, 64))
    assert size.startswith("image size") and "64x48" in size and "32x24" in size
    assert cause("observation.images.front", _scene(7)).startswith("unexplained")


def test_state_order_is_detected_through_the_wire():
    import torch

    # A dataset that stored the base velocities first: the wire reorders by name, so the deploy state
    # is a permutation of the training one.
    names = list(STATE_KEYS[6:] + STATE_KEYS[:6])
    values = torch.arange(9, dtype=torch.float32)
    item = {"observation.state": values, "observation.images.front": _scene(1)[0]}
    obs = parity.deploy_observation(item, names)
    assert obs.state.tolist() == [3, 4, 5, 6, 7, 8, 0, 1, 2]
    assert obs.images["front"].shape == (24, 32, 3)

    finding = checks.state_finding(names, 2.0)
    assert finding is not None and finding.cause.startswith("state order")
    assert checks.state_finding(list(STATE_KEYS), 1e-6) is None


def test_normaliser_stats_check():
    ckpt = {"observation.state": {"mean": np.zeros(9), "std": np.ones(9)}}
    near = {"observation.state": {"mean": np.full(9, 1.5), "std": np.full(9, 2.0)}}  # a short recording
    degrees = {"observation.state": {"mean": np.zeros(9), "std": np.full(9, 57.3)}}  # trained in radians
    assert checks.norm_parity(ckpt, near, "observation.state", STATE_KEYS).level == "ok"
    res, found, _ = checks.norm_checks(ckpt, degrees, {})
    assert res[0].level == "flag" and found and "units or scale" in found[0].cause
