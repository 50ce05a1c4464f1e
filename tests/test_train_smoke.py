"""`lekiwi-drift train` end to end on CPU: a tiny LeKiwi-shaped LeRobotDataset, both objectives,
LeRobot's own training loop, checkpoints that load and act."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lekiwi_drift.record.thread_policy import keep_thread_scheduling

pytest.importorskip("lerobot.datasets")

CAMS = ("front", "wrist", "top")


def make_tiny_dataset(root):
    """Two short episodes, three 64x64 cameras, 9-D state and action, one task, 30 fps (v3, finalized)."""
    from lerobot.datasets import LeRobotDataset

    features = {
        f"observation.images.{cam}": {
            "dtype": "video",
            "shape": (64, 64, 3),
            "names": ["height", "width", "channels"],
        }
        for cam in CAMS
    }
    features["observation.state"] = {"dtype": "float32", "shape": (9,), "names": None}
    features["action"] = {"dtype": "float32", "shape": (9,), "names": None}
    ds = LeRobotDataset.create("local/tiny_lekiwi", fps=30, features=features, root=root, robot_type="lekiwi")
    rng = np.random.default_rng(0)
    for _ in range(2):
        for _ in range(12):
            frame = {f"observation.images.{c}": rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for c in CAMS}
            frame["observation.state"] = rng.standard_normal(9).astype(np.float32)
            frame["action"] = rng.standard_normal(9).astype(np.float32)
            frame["task"] = "pick up the salt bottle and place it in the basket"
            ds.add_frame(frame)
        with keep_thread_scheduling():  # SVT-AV1 run as root would leave this thread real-time
            ds.save_episode(parallel_encoding=False)  # no fork of this (multithreaded) test process
    ds.finalize()  # without it the parquet files are unreadable
    return root


def test_train_both_objectives_and_load(tmp_path, tiny_vlm_dir):
    from lekiwi_drift.cli.main import main
    from lekiwi_drift.policy.checkpoint import load_policy, robot_features

    dataset = make_tiny_dataset(tmp_path / "dataset")
    for objective in ("drift", "flow"):
        out = tmp_path / f"run_{objective}"
        argv = [
            "train", "--objective", objective, "--dataset", str(dataset), "--output", str(out),
            "--steps", "2", "--batch-size", "4", "--tiny", "--vlm-dir", str(tiny_vlm_dir),
            "--num-workers", "0", "--log-freq", "1", "--device", "cpu",
            "--", "--policy.drift_samples=4",
        ]  # fmt: skip
        assert main(argv) == 0
        last = out / "checkpoints" / "last" / "pretrained_model"
        assert (last / "model.safetensors").is_file() and (last / "train_config.json").is_file()

        policy, pre, post = load_policy(out, robot_features=robot_features(list(CAMS)), vlm_dir=tiny_vlm_dir)
        assert policy.config.objective == objective and policy.config.drift_samples == 4
        obs = {f"observation.images.{c}": torch.rand(3, 64, 64) for c in CAMS}
        obs["observation.state"] = torch.randn(9)
        obs["task"] = "pick up the salt bottle and place it in the basket"
        action = post(policy.select_action(pre(obs)))
        assert action.shape == (1, 9) and torch.isfinite(action).all()

    # --init-from: a drift run that starts from the flow checkpoint's weights (the paper's fine-tuning
    # from flow-pretrained SmolVLA); at a negligible learning rate they come out unchanged.
    from safetensors.torch import load_file

    flow_last = tmp_path / "run_flow" / "checkpoints" / "last" / "pretrained_model"
    argv = [
        "train", "--objective", "drift", "--dataset", str(dataset), "--output", str(tmp_path / "run_ft"),
        "--steps", "1", "--batch-size", "4", "--init-from", str(flow_last), "--vlm-dir", str(tiny_vlm_dir),
        "--num-workers", "0", "--device", "cpu", "--", "--policy.optimizer_lr=1e-12",
    ]  # fmt: skip
    assert main(argv) == 0
    ft_last = tmp_path / "run_ft" / "checkpoints" / "last" / "pretrained_model"
    flow_w, ft_w = load_file(flow_last / "model.safetensors"), load_file(ft_last / "model.safetensors")
    assert flow_w.keys() == ft_w.keys()
    assert max((flow_w[k].float() - ft_w[k].float()).abs().max().item() for k in flow_w) < 1e-6
    policy, _, _ = load_policy(tmp_path / "run_ft", robot_features=robot_features(list(CAMS)), vlm_dir=tiny_vlm_dir)
    assert policy.config.objective == "drift"
    with pytest.raises(FileNotFoundError, match="pretrained_model directory"):
        main(["train", "--objective", "drift", "--dataset", str(dataset), "--output", str(tmp_path / "x"),
              "--init-from", str(tmp_path / "run_flow")])  # fmt: skip

    # Resume continues the drift run from its last checkpoint to a later step.
    argv = [
        "train", "--objective", "drift", "--dataset", str(dataset), "--output", str(tmp_path / "run_drift"),
        "--steps", "3", "--batch-size", "4", "--tiny", "--vlm-dir", str(tiny_vlm_dir),
        "--num-workers", "0", "--resume",
    ]  # fmt: skip
    assert main(argv) == 0
    assert (tmp_path / "run_drift" / "checkpoints" / "000003" / "pretrained_model" / "config.json").is_file()


def test_resume_past_the_schedule_says_how_to_stretch_it(tmp_path):
    """Resuming to more steps than the schedule decays over would train at the floor lr: warn with the fix."""
    import json

    from lekiwi_drift.policy.train import TrainOptions, schedule_note

    cfg = tmp_path / "train_config.json"
    cfg.write_text(json.dumps({"scheduler": {"num_decay_steps": 6000, "decay_lr": 2.5e-6}}))
    opts = TrainOptions(objective="drift", dataset="d", output=tmp_path, steps=12000, resume=True)
    note = schedule_note(cfg, opts)
    assert note is not None and "--scheduler.num_decay_steps=12000" in note and "2.5e-06" in note
    opts.extra = ["--scheduler.num_decay_steps=12000"]
    assert schedule_note(cfg, opts) is None
    assert schedule_note(cfg, TrainOptions(objective="drift", dataset="d", output=tmp_path, steps=6000)) is None
