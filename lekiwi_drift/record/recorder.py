"""Record LeKiwi episodes into a LeRobotDataset (v3): create or resume, add frames, save, finalize.

Crash safety. LeRobot keeps a dataset's data and episode-metadata parquet files open across episodes
and writes their footers only in `finalize()`; a process killed before that leaves every episode
unreadable. So each episode is made durable on its own: `save_episode()` saves it, finalizes the dataset
(closing every file) and reopens it with `LeRobotDataset.resume()` for the next one (which starts new
data/video/metadata files, as LeRobot does on every resume). While frames of an open episode are being
collected, nothing on disk is open for writing: a SIGKILL then loses only that episode (its staging
images are cleaned up on the next open).

The save itself (encode videos, write parquet, rewrite info.json/stats.json) is not atomic in LeRobot.
It runs under a journal: before it, the small metadata files are copied to `meta/.journal/` and the list
of existing files is written, last, as the commit marker `meta/.journal/files.json`; after the
finalize the journal is removed. `repair_dataset()` (run by every open) rolls a save that was cut short
back to the last complete episode: it deletes files the save created and restores the metadata copies.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lekiwi_drift.record.thread_policy import keep_thread_scheduling
from lekiwi_drift.robots.features import STATE_KEYS

log = logging.getLogger(__name__)

FPS = 30
# LeRobot's OBS_IMAGES + "." (policy/checkpoint.IMAGE_PREFIX), spelled out: importing either loads torch,
# and `teleop` imports this module even when it does not record.
IMAGE_PREFIX = "observation.images."
JOURNAL_DIR = "meta/.journal"
JOURNAL_MARKER = "files.json"
JOURNALED_FILES = ("meta/info.json", "meta/stats.json", "meta/tasks.parquet")
TRACKED_DIRS = ("data", "videos", "meta/episodes")  # where a save creates files


class DatasetError(RuntimeError):
    """The dataset on disk cannot be used as asked (exists without --resume, features differ, ...)."""


def dataset_features(camera_shapes: dict[str, tuple[int, int]]) -> dict[str, dict]:
    """LeRobot features for three (or any) cameras of (height, width), 9-D state and 9-D action, in the
    names `smolvla_drift` expects (`observation.images.<cam>`, `observation.state`, `action`)."""
    features: dict[str, dict] = {
        f"{IMAGE_PREFIX}{name}": {"dtype": "video", "shape": (h, w, 3), "names": ["height", "width", "channels"]}
        for name, (h, w) in camera_shapes.items()
    }
    features["observation.state"] = {"dtype": "float32", "shape": (len(STATE_KEYS),), "names": list(STATE_KEYS)}
    features["action"] = {"dtype": "float32", "shape": (len(STATE_KEYS),), "names": list(STATE_KEYS)}
    return features


def _rel_files(root: Path) -> list[str]:
    out = []
    for d in TRACKED_DIRS:
        base = root / d
        if base.is_dir():
            out += [str(p.relative_to(root)) for p in base.rglob("*") if p.is_file()]
    return sorted(out)


def _remove_staging(root: Path) -> None:
    """Staging left by an episode that never finished: PNG frames and LeRobot's temporary video dirs."""
    shutil.rmtree(root / "images", ignore_errors=True)
    for tmp in root.glob("tmp*"):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)


def repair_dataset(root: str | Path) -> bool:
    """Undo an interrupted episode save and remove staging leftovers. True if a save was rolled back."""
    root = Path(root)
    journal = root / JOURNAL_DIR
    marker = journal / JOURNAL_MARKER
    rolled_back = False
    if marker.is_file():
        keep = set(json.loads(marker.read_text())["files"])
        for rel in _rel_files(root):
            if rel not in keep:
                (root / rel).unlink()
        for rel in JOURNALED_FILES:
            saved = journal / Path(rel).name
            if saved.is_file():
                os.replace(saved, root / rel)
            elif (root / rel).exists():  # the file did not exist before the save
                (root / rel).unlink()
        log.warning("%s: an episode save was interrupted; rolled back to the last complete episode", root)
        rolled_back = True
    shutil.rmtree(journal, ignore_errors=True)
    _remove_staging(root)
    return rolled_back


@dataclass
class RecorderConfig:
    root: Path  # the dataset directory
    task: str  # the language instruction stored with every frame
    repo_id: str | None = None  # default: local/<directory name>
    fps: int = FPS
    resume: bool = False  # append to an existing dataset (else it must not exist yet)
    robot_type: str = "lekiwi"
    # PNG frames are written by background threads (LeRobot's AsyncImageWriter), so add() only queues.
    image_writer_threads_per_camera: int = 2
    # True: encode video while recording (LeRobot's StreamingVideoEncoder) instead of after each episode.
    streaming_encoding: bool = False
    # Encode a finished episode's cameras one after another, in this process. LeRobot's parallel
    # encoding forks a process pool from here, and by then this process runs link, decode and sim
    # threads: a fork of a multithreaded process can deadlock in the child, and the save then never
    # returns. The gain was small anyway: 10 s of three 640x480 cameras saved in 10.1 s forked vs
    # 10.9 s in process on 2 cores (docs/benchmarks.md, "Saving an episode").
    parallel_encoding: bool = False


class EpisodeRecorder:
    """`open()`, then per tick `add(state, images, action)`; `save_episode()` / `discard_episode()` at
    episode boundaries; `close()` always (discards an open episode, leaves the dataset finalized)."""

    def __init__(self, config: RecorderConfig, camera_shapes: dict[str, tuple[int, int]]):
        self.config = config
        self.root = Path(config.root)
        self.repo_id = config.repo_id or f"local/{self.root.name}"
        self.features = dataset_features(camera_shapes)
        self.camera_keys = [f"{IMAGE_PREFIX}{n}" for n in camera_shapes]
        self.dataset = None
        self.frames = 0  # frames in the open episode
        self.save_s: list[float] = []

    # -- lifecycle ---------------------------------------------------------------------------------
    def open(self) -> EpisodeRecorder:
        from lerobot.datasets import LeRobotDataset

        c = self.config
        if c.streaming_encoding and hasattr(os, "geteuid") and os.geteuid() == 0:
            # LeRobot's encoder threads open SVT-AV1, which makes them real-time as root; they are
            # LeRobot's, so keep_thread_scheduling() cannot reach them (measured: 19 SCHED_FIFO threads
            # encoding one camera while recording).
            log.warning(
                "streaming encoding as root: LeRobot's AV1 encoder threads run real-time (SCHED_FIFO 99) "
                "while recording and can hold up the control loop; record as a normal user, or without "
                "--streaming-encoding (episodes are then encoded when saved, in normal priority)"
            )
        exists = (self.root / "meta" / "info.json").is_file()
        if c.resume and exists:
            repair_dataset(self.root)
            self._check_existing()
            self.dataset = self._resume()
        elif exists:
            raise DatasetError(
                f"dataset {self.root} already exists; pass --resume to append episodes to it, "
                "or choose a new --record directory"
            )
        else:
            if self.root.exists() and any(self.root.iterdir()):
                raise DatasetError(f"{self.root} exists and is not a LeRobot dataset; choose a new --record directory")
            if self.root.exists():
                self.root.rmdir()  # LeRobot creates the directory itself and refuses an existing one
            self.dataset = LeRobotDataset.create(
                self.repo_id,
                fps=c.fps,
                features=self.features,
                root=self.root,
                robot_type=c.robot_type,
                use_videos=True,
                image_writer_threads=self._image_threads(),
                streaming_encoding=c.streaming_encoding,
            )
        return self

    def _image_threads(self) -> int:
        return (
            0 if self.config.streaming_encoding else self.config.image_writer_threads_per_camera * len(self.camera_keys)
        )

    def _resume(self):
        from lerobot.datasets import LeRobotDataset

        return LeRobotDataset.resume(
            self.repo_id,
            root=self.root,
            image_writer_threads=self._image_threads(),
            streaming_encoding=self.config.streaming_encoding,
        )

    def _check_existing(self) -> None:
        info = json.loads((self.root / "meta" / "info.json").read_text())
        have = info.get("features", {})
        problems = []
        if info.get("fps") != self.config.fps:
            problems.append(f"fps {info.get('fps')} (recording at {self.config.fps})")
        for key, ft in self.features.items():
            old = have.get(key)
            if old is None:
                problems.append(f"no feature {key}")
            elif tuple(old["shape"]) != tuple(ft["shape"]) or old["dtype"] != ft["dtype"]:
                problems.append(
                    f"{key} is {old['dtype']} {tuple(old['shape'])}, now {ft['dtype']} {tuple(ft['shape'])}"
                )
        extra = [k for k in have if k.startswith(IMAGE_PREFIX) and k not in self.features]
        if extra:
            problems.append(f"cameras {extra} are not on this robot")
        if problems:
            raise DatasetError(
                f"cannot resume {self.root}: " + "; ".join(problems) + ". Record into a new "
                "directory, or use the same cameras and sizes as before."
            )

    @property
    def num_episodes(self) -> int:
        return 0 if self.dataset is None else int(self.dataset.meta.total_episodes)

    @property
    def total_frames(self) -> int:
        return 0 if self.dataset is None else int(self.dataset.meta.total_frames)

    # -- per tick ----------------------------------------------------------------------------------
    def add(self, state: np.ndarray, images: dict[str, np.ndarray], action: np.ndarray) -> None:
        """One frame: the observation the action was chosen on, and the action actually sent."""
        frame = {f"{IMAGE_PREFIX}{name}": img for name, img in images.items()}
        frame["observation.state"] = np.asarray(state, dtype=np.float32)
        frame["action"] = np.asarray(action, dtype=np.float32)
        frame["task"] = self.config.task
        self.dataset.add_frame(frame)
        self.frames += 1

    # -- episode boundaries ------------------------------------------------------------------------
    def save_episode(self) -> int:
        """Make the open episode durable (see the module doc). Returns its frame count (0: nothing)."""
        if self.frames == 0:
            return 0
        t0 = time.perf_counter()
        frames = self.frames
        self._begin_journal()
        with keep_thread_scheduling():  # SVT-AV1 run as root leaves this thread real-time (thread_policy.py)
            self.dataset.save_episode(parallel_encoding=self.config.parallel_encoding)
            self.dataset.finalize()
        self._end_journal()
        self.frames = 0
        self.dataset = self._resume()
        self.save_s.append(time.perf_counter() - t0)
        return frames

    def discard_episode(self) -> None:
        if self.dataset is not None and self.frames:
            self.dataset.clear_episode_buffer()
        self.frames = 0

    def close(self) -> None:
        """Discard the open episode and finalize. Idempotent; completed episodes are already durable."""
        if self.dataset is None:
            return
        try:
            self.discard_episode()
        finally:
            with keep_thread_scheduling():  # a finalize may encode what streaming encoding still holds
                self.dataset.finalize()
            self.dataset = None
            _remove_staging(self.root)

    def __enter__(self) -> EpisodeRecorder:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- journal -----------------------------------------------------------------------------------
    def _begin_journal(self) -> None:
        journal = self.root / JOURNAL_DIR
        shutil.rmtree(journal, ignore_errors=True)
        journal.mkdir(parents=True)
        for rel in JOURNALED_FILES:
            if (self.root / rel).is_file():
                shutil.copy2(self.root / rel, journal / Path(rel).name)
        tmp = journal / (JOURNAL_MARKER + ".tmp")
        tmp.write_text(json.dumps({"files": _rel_files(self.root)}))
        os.replace(tmp, journal / JOURNAL_MARKER)  # the commit point: from here a repair rolls back

    def _end_journal(self) -> None:
        journal = self.root / JOURNAL_DIR
        (journal / JOURNAL_MARKER).unlink()  # the save is complete: nothing to roll back any more
        shutil.rmtree(journal, ignore_errors=True)
