"""`lekiwi-drift teleop --record` against the lockstep sim with the scripted teleoperator: the dataset
opens with LeRobotDataset, frame counts match, videos decode, features fit `smolvla_drift`, a few
training steps run on it; a real-time recording counts the frames its overruns drop; a recording killed
mid-episode (a real SIGKILL) keeps its completed episodes, and `--resume` appends to it; a save cut short is
rolled back; Ctrl-C finalizes."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import io
import itertools
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lerobot.datasets")

from lekiwi_drift.record.thread_policy import keep_thread_scheduling
from lekiwi_drift.robots.features import JOINT_LIMITS_DEG, MAX_LINEAR_SPEED, STATE_KEYS

CAMS = ("front", "wrist", "top")
SIZE = "64x48"
TASK = "pick the salt bottle and put it in the basket"


def teleop_argv(root: Path, episodes: int, episode_time: float, *extra: str) -> list[str]:
    return [
        "teleop",
        "--sim",
        "--clock",
        "lockstep",
        "--size",
        SIZE,
        "--no-keyboard",
        "--record",
        str(root),
        "--episodes",
        str(episodes),
        "--episode-time",
        str(episode_time),
        "--task",
        TASK,
        *extra,
    ]


def open_dataset(root: Path):
    from lerobot.datasets import LeRobotDataset

    return LeRobotDataset(f"local/{root.name}", root=root)


def test_record_three_episodes_then_train(tmp_path, tiny_vlm_dir, capsys):
    from lekiwi_drift.cli.main import main
    from lekiwi_drift.policy.checkpoint import check_features, load_config, robot_features

    root = tmp_path / "demos"
    assert main(teleop_argv(root, 3, 2.0)) == 0
    out, err = capsys.readouterr()
    assert f"episode 3/3: saving 60 frames to {root}: done in" in err  # the save's progress, on stderr
    # (No "dropped" claim here: a lockstep sim waits for every tick, so nothing can drop by construction.
    # test_realtime_recording_counts_every_dropped_frame makes frames drop and checks the count.)
    assert "episode 3/3: saved 60 frames" in out

    ds = open_dataset(root)
    assert ds.num_episodes == 3 and ds.num_frames == 180 and ds.fps == 30
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["codebase_version"].startswith("v3")
    for cam in CAMS:
        assert ds.features[f"observation.images.{cam}"]["shape"] == (48, 64, 3)
        assert ds.features[f"observation.images.{cam}"]["dtype"] == "video"
    assert ds.features["observation.state"]["shape"] == (9,) and ds.features["action"]["shape"] == (9,)
    assert ds.features["action"]["names"] == list(STATE_KEYS)
    lengths = [ds.meta.episodes[i]["length"] for i in range(3)]
    assert lengths == [60, 60, 60]

    # Videos decode (a frame from each episode and camera), the task is stored, actions are within limits.
    for idx in (0, 75, 179):
        item = ds[idx]
        for cam in CAMS:
            img = item[f"observation.images.{cam}"]
            assert tuple(img.shape) == (3, 48, 64) and float(img.std()) > 0.01
        assert item["task"] == TASK
    actions = np.stack([ds.hf_dataset[i]["action"].numpy() for i in range(len(ds))])
    for j, key in enumerate(STATE_KEYS[:6]):
        lo, hi = JOINT_LIMITS_DEG[key]
        assert lo <= actions[:, j].min() and actions[:, j].max() <= hi
    assert np.abs(actions[:, 6:8]).max() <= MAX_LINEAR_SPEED + 1e-6
    assert np.abs(actions[:, 6:]).max() > 0  # the expert drove the base
    # Each episode starts from its own scene (seed + episode), so the base commands differ.
    assert not np.allclose(actions[0:60, 6:], actions[60:120, 6:])

    # The features are what a smolvla_drift policy for this robot expects, and training runs on it.
    run = tmp_path / "run"
    argv = [
        "train",
        "--objective",
        "drift",
        "--dataset",
        str(root),
        "--output",
        str(run),
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--tiny",
        "--vlm-dir",
        str(tiny_vlm_dir),
        "--num-workers",
        "0",
        "--device",
        "cpu",
        "--",
        "--policy.drift_samples=4",
    ]
    assert main(argv) == 0
    config = load_config(run, vlm_dir=tiny_vlm_dir)
    check_features(config, ds.features)
    check_features(config, robot_features(list(CAMS)))


class SeqSpy:
    """The link as the session sees it, keeping the `seq` of every observation `latest()` handed out."""

    def __init__(self, link):
        self.link = link
        self.seqs: list[int | None] = []

    def latest(self):
        obs = self.link.latest()
        self.seqs.append(obs.seq)
        return obs

    def __getattr__(self, name):
        return getattr(self.link, name)


def test_realtime_recording_counts_every_dropped_frame(tmp_path):
    """Real time, every 10th action takes 100 ms (a slow leader-arm read): the slots the loop loses get no
    frame and count as dropped, as does each frame recorded from an observation it already recorded."""
    from lekiwi_drift.config.robot import load_config
    from lekiwi_drift.link.client import RobotLink
    from lekiwi_drift.record.recorder import EpisodeRecorder, RecorderConfig
    from lekiwi_drift.robots.features import BASE_KEYS
    from lekiwi_drift.sim.local import start_local_sim_host
    from lekiwi_drift.teleop.session import SessionConfig, TeleopSession

    class StallingSource:
        calls = 0

        def action(self, obs):
            self.calls += 1
            if self.calls % 10 == 0:
                time.sleep(0.1)  # at least two 33 ms slots lost
            return {**dict(zip(STATE_KEYS, map(float, obs.state))), **{k: 0.0 for k in BASE_KEYS}}

    root = tmp_path / "realtime"
    with start_local_sim_host(load_config(), clock="realtime", size=SIZE) as local, RobotLink(local.config) as link:
        obs = link.connect()
        rec = EpisodeRecorder(RecorderConfig(root=root, task=TASK), {c: obs.images[c].shape[:2] for c in CAMS})
        rec.open()
        spy = SeqSpy(link)
        session = TeleopSession(
            SessionConfig(sim=True, episodes=1, episode_time_s=1.5),
            spy,
            StallingSource(),
            recorder=rec,
            out=io.StringIO(),
        )
        try:
            session.run()
        finally:
            rec.close()
    k, slots = session.counters, 45
    assert k.skipped_ticks >= 2 and k.overruns >= 1
    assert session.result.saved == [k.frames] and k.frames == k.ticks == open_dataset(root).num_frames
    assert k.frames + k.skipped_ticks >= slots  # every slot of the 1.5 s has a frame or is counted lost
    seqs = spy.seqs[-k.ticks :]  # the episode's ticks are the session's last `latest()` calls, one each
    repeats = sum(a == b for a, b in itertools.pairwise(seqs))
    assert k.dropped == k.skipped_ticks + repeats


def _wait_line(proc, needle: str, timeout_s: float) -> list[str]:
    lines = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return lines
    proc.kill()
    raise AssertionError(f"never saw {needle!r}; output:\n{''.join(lines)}")


def test_sigkill_mid_episode_keeps_completed_episodes_and_resume_appends(tmp_path):
    root = tmp_path / "killed"
    argv = [sys.executable, "-m", "lekiwi_drift.cli.main", *teleop_argv(root, 5, 3.0)]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    try:
        _wait_line(proc, "episode 1/5: saved 90 frames", 120)
        _wait_line(proc, "episode 2/5 | REC", 30)  # recording frames of episode 2 now
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL

    ds = open_dataset(root)  # valid as left behind, without any repair
    assert ds.num_episodes == 1 and ds.num_frames == 90
    assert tuple(ds[89]["observation.images.top"].shape) == (3, 48, 64)

    # --resume cleans the dead episode's staging and appends (the scene seed continues at 1).
    from lekiwi_drift.cli.main import main

    assert main(teleop_argv(root, 1, 1.0, "--resume")) == 0
    assert not (root / "images").exists()
    ds = open_dataset(root)
    assert ds.num_episodes == 2 and ds.num_frames == 120
    assert ds[119]["episode_index"].item() == 1 and ds[119]["frame_index"].item() == 29


def test_save_cut_short_is_rolled_back(tmp_path):
    """Snapshot the directory in the middle of a save (data parquet written but still open, metadata
    not yet flushed): what a SIGKILL at that moment leaves. `repair_dataset` restores the last
    complete episode."""
    from lekiwi_drift.record.recorder import EpisodeRecorder, RecorderConfig, repair_dataset

    shapes = {c: (24, 32) for c in CAMS}
    rng = np.random.default_rng(0)
    root = tmp_path / "ds"
    rec = EpisodeRecorder(RecorderConfig(root=root, task=TASK, parallel_encoding=False), shapes).open()

    def frames(n):
        for _ in range(n):
            rec.add(
                rng.standard_normal(9),
                {c: rng.integers(0, 255, (24, 32, 3), dtype=np.uint8) for c in CAMS},
                rng.standard_normal(9),
            )

    frames(10)
    assert rec.save_episode() == 10
    frames(7)
    rec._begin_journal()
    with keep_thread_scheduling():  # as the recorder does: SVT-AV1 run as root leaves the thread real-time
        rec.dataset.save_episode(parallel_encoding=False)
    crashed = tmp_path / "crashed"
    shutil.copytree(root, crashed)
    rec.dataset.finalize()
    rec._end_journal()
    rec.dataset = rec._resume()
    rec.frames = 0
    rec.close()

    assert repair_dataset(crashed) is True
    ds = open_dataset(crashed)
    assert ds.num_episodes == 1 and ds.num_frames == 10
    assert open_dataset(root).num_frames == 17  # the uninterrupted copy kept both


def test_ctrl_c_mid_episode_finalizes(tmp_path):
    """Ctrl-C (here: the keyboard's interrupt command, what kitty mode delivers) mid-episode 2."""
    from lekiwi_drift.config.robot import load_config
    from lekiwi_drift.link.client import RobotLink
    from lekiwi_drift.record.recorder import EpisodeRecorder, RecorderConfig
    from lekiwi_drift.sim.local import start_local_sim_host
    from lekiwi_drift.teleop import keyboard as kb
    from lekiwi_drift.teleop.session import SessionConfig, TeleopSession
    from lekiwi_drift.teleop.sources import ScriptedSource

    class Keys:
        mode_text = "keys: test"

        def __init__(self):
            self.calls = 0

        def pop_commands(self):
            self.calls += 1
            return [kb.INTERRUPT] if self.calls == 60 + 20 else []  # 20 ticks into episode 2

        def speed_level(self):
            return 0

    root = tmp_path / "ctrl_c"
    local = start_local_sim_host(load_config(), clock="lockstep", size=SIZE, expert=True)
    link = RobotLink(local.config)
    try:
        obs = link.connect()
        rec = EpisodeRecorder(RecorderConfig(root=root, task=TASK), {c: obs.images[c].shape[:2] for c in CAMS})
        rec.open()
        session = TeleopSession(
            SessionConfig(lockstep=True, sim=True, episodes=3, episode_time_s=2.0),
            link,
            ScriptedSource(),
            keyboard=Keys(),
            recorder=rec,
            out=open(os.devnull, "w"),
        )
        with pytest.raises(KeyboardInterrupt):
            try:
                session.run()
            finally:
                rec.close()
    finally:
        link.close()
        local.stop()
    ds = open_dataset(root)
    assert ds.num_episodes == 1 and ds.num_frames == 60
    assert not (root / "images").exists()
