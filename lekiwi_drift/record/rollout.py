"""Policy rollouts as a LeRobotDataset (`lekiwi-drift run --record DIR`).

Each run episode becomes one dataset episode: per control tick, the observation the command was chosen
on (state and camera frames as the robot sent them) and the command actually sent, after the safety
filter (a hold in a stall, the e-stop's hold), with the preset's task string. Ticks on a stale
observation (the loop holds and does not act on it) are not frames: they would repeat an old one. The features are the
teleop recorder's (record/recorder.py), so a rollout dataset opens, trains and plays like a demo
dataset; the frames and the crash-safe saving are that recorder's too.

LeRobot's metadata has no place for which policy produced an episode (unknown info.json keys are
dropped on the next save), so `meta/rollouts.jsonl` holds one line per episode: its index, the preset,
checkpoint and hash, mode, latency profile, outcome, sim seed and the run directory. A dataset whose
episodes have no such lines (teleop demos) is refused: rollouts, failures included, must not end up in
the training demos by accident.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lekiwi_drift.record.recorder import DatasetError, EpisodeRecorder, RecorderConfig
from lekiwi_drift.robots.features import STATE_KEYS

ROLLOUTS_FILE = "meta/rollouts.jsonl"


@dataclass
class RolloutSource:
    """What produced the rollouts: written with every episode to meta/rollouts.jsonl."""

    policy: str  # the preset's name
    preset_file: str = ""
    checkpoint: str = ""
    checkpoint_hash: str = ""
    mode: str = ""
    latency: str | None = None
    run_dir: str = ""
    extra: dict = field(default_factory=dict)


class RolloutRecorder:
    """`open()`; per episode `start()`, `add(obs, sent)` each tick (ControlLoop does both), then
    `save(outcome, seed)` from the caller; `close()` always."""

    def __init__(
        self,
        root: str | Path,
        task: str,
        fps: float,
        camera_shapes: dict[str, tuple[int, int]],
        source: RolloutSource,
    ):
        if abs(fps - round(fps)) > 1e-9:
            raise DatasetError(f"a LeRobotDataset needs a whole number of frames per second; control_hz is {fps}")
        self.root = Path(root)
        self.source = source
        self.camera_shapes = dict(camera_shapes)
        self._recorder = EpisodeRecorder(
            RecorderConfig(root=self.root, task=task, fps=int(round(fps)), resume=True), camera_shapes
        )

    def open(self) -> RolloutRecorder:
        check_rollout_dir(self.root)
        self._recorder.open()  # appends when the dataset exists, refusing different features or fps
        return self

    @property
    def num_episodes(self) -> int:
        return self._recorder.num_episodes

    @property
    def frames(self) -> int:
        """Frames in the open episode."""
        return self._recorder.frames

    # -- per episode (ControlLoop) -----------------------------------------------------------------
    def start(self) -> None:
        """A new episode: frames of an unsaved one are dropped."""
        self._recorder.discard_episode()

    def add(self, obs, sent: dict[str, float]) -> None:
        """One tick: `obs` the command was chosen on, `sent` the command that went to the robot."""
        images = {name: obs.images[name] for name in self.camera_shapes if name in obs.images}
        if len(images) != len(self.camera_shapes):
            return  # a frame without every camera cannot be a dataset frame (the link drops such frames)
        action = np.array([sent[k] for k in STATE_KEYS], dtype=np.float32)
        self._recorder.add(obs.state, images, action)

    # -- between episodes (the caller) -------------------------------------------------------------
    def save(self, outcome: str, seed: int | None = None, **extra) -> tuple[int, int] | None:
        """Make the episode durable and log its source. Returns (episode index, frames); None: no frames."""
        index = self._recorder.num_episodes
        frames = self._recorder.save_episode()
        if frames == 0:
            return None
        s = self.source
        line = {
            "episode_index": index,
            "policy": s.policy,
            "preset_file": s.preset_file,
            "checkpoint": s.checkpoint,
            "checkpoint_hash": s.checkpoint_hash,
            "mode": s.mode,
            "latency": s.latency,
            "outcome": outcome,
            "seed": seed,
            "frames": frames,
            "run_dir": s.run_dir,
            **s.extra,
            **extra,
        }
        with open(self.root / ROLLOUTS_FILE, "a") as f:
            f.write(json.dumps(line, default=str) + "\n")
        return index, frames

    def close(self) -> None:
        self._recorder.close()

    def __enter__(self) -> RolloutRecorder:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()


def _logged_episodes(root: Path) -> int:
    path = root / ROLLOUTS_FILE
    return sum(1 for line in path.read_text().splitlines() if line.strip()) if path.is_file() else 0


def check_rollout_dir(root: str | Path) -> None:
    """Refuse, before anything moves, a directory rollouts cannot go to: a dataset of other episodes
    (teleop demos), or a folder that is no dataset. Features are checked when the recorder opens."""
    root = Path(root)
    info_path = root / "meta" / "info.json"
    if info_path.is_file():
        episodes = int(json.loads(info_path.read_text()).get("total_episodes", 0))
        if episodes and not _logged_episodes(root):
            raise DatasetError(
                f"{root} holds {episodes} episode(s) that are not policy rollouts (teleop demos?); record "
                "rollouts into a dataset of their own (a new --record directory)"
            )
    elif root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise DatasetError(f"{root} exists and is not a LeRobot dataset; choose a new --record directory")
