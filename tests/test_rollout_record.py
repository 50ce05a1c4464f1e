"""`run --record DIR` (record/rollout.py): a policy's rollouts on the real lockstep sim over the real wire
become a LeRobotDataset whose frames are what the loop saw and whose actions are what the link sent."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lekiwi_drift.link.client import RobotLink
from lekiwi_drift.robots.features import STATE_KEYS

TASK = "pick up the salt bottle and place it in the basket"


class SpyLink(RobotLink):
    """The real link, noting every lockstep command it sends and the state of the observation it got
    back. On a lockstep host the loop's prime is a step too (a hold, before tick 0); the final stop goes
    through send_action. Neither is an episode tick."""

    def __init__(self, config):
        super().__init__(config)
        self.stepped: list[list[float]] = []
        self.states_after: list[np.ndarray] = []

    def step(self, action, *args, **kwargs):
        self.stepped.append([float(action[k]) for k in STATE_KEYS])
        obs = super().step(action, *args, **kwargs)
        self.states_after.append(obs.state.copy())
        return obs


@pytest.fixture(scope="module")
def tiny_preset(tiny_checkpoint, tiny_vlm_dir):
    from lekiwi_drift.control.preset import load_preset

    path = tiny_checkpoint / "record.yaml"
    path.write_text(
        f"checkpoint: {tiny_checkpoint / 'model'}\nvlm_dir: {tiny_vlm_dir}\nsim_size: 64x48\nend_on_success: false\n"
    )
    return load_preset(path)


def _record_two(tiny_preset, root, cfg, runtime):
    """Two 0.5 s episodes (sim time, no latency) into `root`; returns each episode's (sent, states seen)."""
    from lekiwi_drift.control.loop import ControlLoop
    from lekiwi_drift.control.sim_time import LatencyProfile
    from lekiwi_drift.record.rollout import RolloutRecorder, RolloutSource
    from lekiwi_drift.sim.local import start_local_sim_host

    per_episode = []
    with start_local_sim_host(cfg, clock="lockstep", size="64x48", scene=0) as local:
        link = SpyLink(local.config)
        first = link.connect()
        shapes = {n: im.shape[:2] for n, im in first.images.items()}
        source = RolloutSource(policy="tiny", checkpoint_hash=runtime.checkpoint_hash, mode="async")
        recorder = RolloutRecorder(root, TASK, 30, shapes, source).open()
        loop = ControlLoop(link, runtime, tiny_preset, local.config, latency=LatencyProfile.parse("0"), taps=[recorder])
        try:
            for seed in (3, 4):
                link.request({"op": "reset", "item": "salt_bottle", "seed": seed, "scene": 0})
                for noted in (link.stepped, link.states_after):
                    noted.clear()
                result = loop.run_episode(max_time_s=0.5)
                assert result.outcome == "timeout", result.error
                assert recorder.save(result.outcome, seed=seed) is not None
                # step 0 is the prime's hold; tick k acts on the observation the step before it returned
                seen = link.states_after[:-1]
                per_episode.append((np.array(link.stepped[1:]), np.array(seen)))
        finally:
            loop.close()
            recorder.close()
            link.close()
    return per_episode


def test_rollouts_are_a_dataset_of_what_was_seen_and_sent(tmp_path, tiny_preset):
    from lerobot.datasets import LeRobotDataset

    from lekiwi_drift.config.robot import load_config
    from lekiwi_drift.control.runtime import PolicyRuntime
    from lekiwi_drift.record.recorder import DatasetError
    from lekiwi_drift.record.rollout import ROLLOUTS_FILE, RolloutRecorder, RolloutSource

    cfg = load_config(None)
    runtime = PolicyRuntime.load(tiny_preset, cfg)
    root = tmp_path / "rollouts"
    episodes = _record_two(tiny_preset, root, cfg, runtime)
    episodes += _record_two(tiny_preset, root, cfg, runtime)  # a second run appends

    ds = LeRobotDataset("local/rollouts", root=root)
    assert ds.meta.total_episodes == 4 and ds.meta.fps == 30
    assert ds.meta.total_frames == sum(len(sent) for sent, _ in episodes) == 4 * 15  # 0.5 s at 30 Hz
    assert ds.meta.features["observation.images.front"]["shape"][:2] == (48, 64)
    actions = np.stack([ds.hf_dataset[i]["action"].numpy() for i in range(len(ds.hf_dataset))])
    states = np.stack([ds.hf_dataset[i]["observation.state"].numpy() for i in range(len(ds.hf_dataset))])
    index = np.array([int(ds.hf_dataset[i]["episode_index"]) for i in range(len(ds.hf_dataset))])
    for ep, (sent, seen) in enumerate(episodes):
        # float32 in the dataset, the commands as floats on the wire
        np.testing.assert_allclose(actions[index == ep], sent, atol=1e-5)
        np.testing.assert_allclose(states[index == ep], seen, atol=1e-5)
    assert not np.allclose(actions[index == 0], actions[index == 0][0])  # the policy moved: not all holds
    assert ds[0]["task"] == TASK and ds[0]["observation.images.front"].shape == (3, 48, 64)

    lines = [json.loads(x) for x in (root / ROLLOUTS_FILE).read_text().splitlines()]
    assert [(x["episode_index"], x["seed"], x["policy"]) for x in lines] == [
        (0, 3, "tiny"),
        (1, 4, "tiny"),
        (2, 3, "tiny"),
        (3, 4, "tiny"),
    ]
    assert all(x["checkpoint_hash"] == runtime.checkpoint_hash and x["outcome"] == "timeout" for x in lines)

    # Another camera size cannot join this dataset; nor can rollouts join a dataset of teleop demos.
    with pytest.raises(DatasetError, match="cannot resume"):
        RolloutRecorder(
            root, TASK, 30, {"front": (96, 128), "wrist": (48, 64), "top": (48, 64)}, RolloutSource("x")
        ).open()
    (root / ROLLOUTS_FILE).unlink()
    with pytest.raises(DatasetError, match="not policy rollouts"):
        RolloutRecorder(
            root, TASK, 30, {"front": (48, 64), "wrist": (48, 64), "top": (48, 64)}, RolloutSource("x")
        ).open()


def test_run_record_cli(tmp_path, monkeypatch, capsys):
    """The command line: two episodes of the shipped drift1 preset recorded, with the save's progress on
    stderr; a dataset of teleop demos is refused before the policy loads."""
    from lerobot.datasets import LeRobotDataset

    from lekiwi_drift.cli.main import main
    from lekiwi_drift.record.recorder import EpisodeRecorder, RecorderConfig

    monkeypatch.chdir(tmp_path)
    argv = ["run", "--policy", "drift1", "--max-time", "0.5", "--latency", "0", "--quiet", "--episodes", "2"]
    assert main([*argv, "--seed", "9", "--record", "data/r"]) == 0, capsys.readouterr()
    out, err = capsys.readouterr()
    assert "recording rollouts to data/r (new)" in out and "recorded episode 1 (15 frames)" in out
    assert "saving episode 1 (15 frames) to data/r: done in" in err  # progress of the save, on stderr
    ds = LeRobotDataset("local/r", root=tmp_path / "data" / "r")
    assert (ds.meta.total_episodes, ds.meta.total_frames) == (2, 30)
    lines = [json.loads(x) for x in (tmp_path / "data/r/meta/rollouts.jsonl").read_text().splitlines()]
    assert [(x["seed"], x["policy"], x["latency"]) for x in lines] == [(9, "drift1", "0"), (10, "drift1", "0")]

    with EpisodeRecorder(RecorderConfig(tmp_path / "demos", TASK), {"front": (96, 128)}) as rec:
        rec.add(np.zeros(9), {"front": np.zeros((96, 128, 3), np.uint8)}, np.zeros(9))
        rec.save_episode()
    assert main([*argv, "--record", "demos"]) == 2
    out, err = capsys.readouterr()
    assert "not policy rollouts" in err and "new --record directory" in err
    assert "loading policy" not in out  # refused before anything loads or moves
