"""Issue 13: our policy and sim as first-class LeRobot plugins.

The sim shop as a gymnasium env (real MuJoCo): the scripted expert, acting only through `env.step`,
ends an episode with the success LeRobot counts. Then LeRobot's own CLIs as installed by the README
command (`lerobot-eval`, `lerobot-train` in the venv's bin), which find `--policy.type=smolvla_drift` and
`--env.type=lekiwi_shop` only through the `lerobot_policy_*` / `lerobot_env_*` plugin distributions.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PLUGINS = ("lerobot_policy_smolvla_drift", "lerobot_env_lekiwi_shop")


def test_env_expert_success_is_what_lerobot_counts():
    import gymnasium as gym

    from lekiwi_drift.robots.features import STATE_KEYS
    from lekiwi_drift.sim.expert import ScriptedExpert
    from lekiwi_drift.sim.lerobot_env import LeKiwiShopEnvConfig

    # Tiny cameras: this test is about the episode, not the pictures.
    cfg = LeKiwiShopEnvConfig(observation_width=32, observation_height=24, episode_length=900)
    env = gym.make(cfg.gym_id, **cfg.gym_kwargs)
    try:
        obs, info = env.reset(seed=0)
        assert env.observation_space.contains(obs) and info["is_success"] is False
        assert {k: v.shape for k, v in obs["pixels"].items()} == {c: (24, 32, 3) for c in ("front", "wrist", "top")}
        assert env.unwrapped.task_description == "pick up the salt bottle and place it in the basket"

        expert = ScriptedExpert(env.unwrapped.sim)  # privileged state in, 9-D actions out through step()
        for _ in range(900):
            act = expert.act()
            obs, reward, terminated, truncated, info = env.step(np.array([act[k] for k in STATE_KEYS], np.float32))
            if terminated or truncated:
                break
            assert reward == 0.0 and info["is_success"] is False
        assert terminated and not truncated, "the expert should put the bottle in the basket within 30 s"
        assert reward == 1.0 and info["is_success"] is True
        assert env.unwrapped.sim.task.success  # the sim's own detector agrees
        assert env.render().shape == (24, 96, 3)  # the three cameras side by side: lerobot-eval's video frame

        # The seed is the scene's jitter seed: the same seed gives the same first observation.
        a, _ = env.reset(seed=5)
        b, _ = env.reset(seed=5)
        c, _ = env.reset(seed=6)
        assert all(np.array_equal(a["pixels"][k], b["pixels"][k]) for k in a["pixels"])
        assert not all(np.array_equal(a["pixels"][k], c["pixels"][k]) for k in a["pixels"])
    finally:
        env.close()


def _lerobot(cli: str, *args: str, cwd: Path, timeout: float = 560.0) -> subprocess.CompletedProcess:
    """Run one of LeRobot's console scripts from the venv, offline, as a user would."""
    missing = [p for p in PLUGINS if not _installed(p)]
    if missing:
        pytest.fail(f"plugin distributions not installed: {missing}; install as README.md's quickstart says")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    proc = subprocess.run(
        [str(BIN / cli), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"{cli} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _video_size_and_frames(path: Path) -> tuple[int, int, int]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.width, stream.height, sum(1 for _ in container.decode(video=0))


# A CLI run costs about 20 s of CPU, mostly importing LeRobot and torch; on a loaded machine its wall time
# is many times that, hence a bound above the suite's default 300 s per test.
@pytest.mark.timeout(600)
def test_lerobot_eval_runs_the_shipped_checkpoint_in_our_sim(tmp_path):
    # The README's command, shortened to 8 steps: two episodes in one batch of two sub-envs, each in its
    # own worker process (AsyncVectorEnv: how an evaluation spreads over cores; the workers find the gym
    # id by unpickling our config). Run from the repository root: the checkpoint names its VLM dir
    # relative to it. (The in-process SyncVectorEnv runs in the lerobot-train test below.)
    out = tmp_path / "eval"
    _lerobot(
        "lerobot-eval",
        "--policy.path=policies/checkpoints/drift_small",
        "--env.type=lekiwi_shop",
        "--env.episode_length=8",
        "--eval.n_episodes=2",
        "--eval.batch_size=2",
        "--eval.use_async_envs=true",
        "--seed=0",
        f"--output_dir={out}",
        cwd=ROOT,
    )
    info = json.loads((out / "eval_info.json").read_text())
    overall = info["overall"]
    assert overall["n_episodes"] == 2
    # Eight steps (0.27 s) cannot put a bottle in a basket: a success here would be a scoring bug.
    assert overall["pc_success"] == 0.0 and info["per_task"][0]["metrics"]["successes"] == [False, False]
    videos = [Path(p) for p in overall["video_paths"]]
    assert len(videos) == 2 and all(v.parent.parent == out / "videos" for v in videos)
    for video in videos:
        width, height, frames = _video_size_and_frames(video)
        assert (width, height) == (3 * 128, 96)  # front | wrist | top at the checkpoint's camera size
        assert frames >= 8


@pytest.mark.timeout(600)
def test_lerobot_train_trains_smolvla_drift_and_evaluates_in_our_sim(tmp_path, tiny_vlm_dir):
    from lekiwi_drift.policy.train import TINY_POLICY_ARGS, video_backend_args
    from tests.test_train_smoke import make_tiny_dataset

    dataset = make_tiny_dataset(tmp_path / "dataset")  # three 64x64 cameras, 9-D state and action
    out = tmp_path / "train"
    proc = _lerobot(
        "lerobot-train",
        "--dataset.repo_id=local/tiny_lekiwi",
        f"--dataset.root={dataset}",
        *video_backend_args(),
        "--policy.type=smolvla_drift",
        f"--policy.vlm_model_name={tiny_vlm_dir}",
        "--policy.load_vlm_weights=false",
        *TINY_POLICY_ARGS,
        "--policy.drift_samples=4",
        "--policy.push_to_hub=false",
        "--policy.device=cpu",
        "--steps=2",
        "--batch_size=2",
        "--num_workers=0",
        "--save_freq=2",
        "--log_freq=1",
        "--wandb.enable=false",
        f"--output_dir={out}",
        # LeRobot's own evaluation during training, in our sim at the dataset's camera size.
        "--env.type=lekiwi_shop",
        "--env.observation_width=64",
        "--env.observation_height=64",
        "--env.episode_length=5",
        "--env_eval_freq=2",
        "--eval.n_episodes=1",
        "--eval.batch_size=1",
        cwd=tmp_path,
    )
    config = json.loads((out / "checkpoints" / "last" / "pretrained_model" / "config.json").read_text())
    assert config["type"] == "smolvla_drift" and config["objective"] == "drift" and config["drift_samples"] == 4
    assert set(config["input_features"]) == {
        "observation.images.front",
        "observation.images.wrist",
        "observation.images.top",
        "observation.state",
    }
    assert "drift_energy" in proc.stdout + proc.stderr  # the drift loss' diagnostics reached LeRobot's log
    videos = list((out / "eval").rglob("eval_episode_0.mp4"))
    assert len(videos) == 1 and _video_size_and_frames(videos[0])[:2] == (3 * 64, 64)
