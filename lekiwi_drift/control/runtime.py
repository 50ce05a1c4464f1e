"""`PolicyRuntime`: a checkpoint loaded once and kept warm, turning observations into timed chunks.

It owns the policy and its pre/post processors, checks the checkpoint against the robot's cameras and
vector sizes *before* anything moves, converts a wire `Observation` into the policy's batch (camera
mapping from the preset, task string), and returns whole chunks (unnormalised, STATE_KEYS order) with
their timings. The control loop decides when to call it and from which thread; torch releases the GIL
while it computes, so a worker thread keeps the 30 Hz loop ticking.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lekiwi_drift.config.robot import RobotConfig
from lekiwi_drift.control.preset import Preset
from lekiwi_drift.control.scheduler import Chunk
from lekiwi_drift.link.wire import Observation
from lekiwi_drift.robots.features import STATE_KEYS

log = logging.getLogger(__name__)


def file_hash(path: Path, length: int = 12) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:length]


def pick_device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class RuntimeInfo:
    checkpoint: str
    checkpoint_hash: str
    objective: str
    sampler: str
    flow_steps: int
    keystone_samples: int
    chunk_size: int
    n_action_steps: int
    device: str
    camera_map: dict
    warmup_ms: float


class PolicyRuntime:
    def __init__(
        self,
        preset: Preset,
        policy,
        pre,
        post,
        camera_map: dict[str, str],
        checkpoint_dir: Path | None,
        device: str,
        checkpoint_hash: str | None = None,
    ):
        """Use `load()`; direct construction is for policies built in memory (benchmarks), which
        pass `checkpoint_dir=None` and a `checkpoint_hash` label."""
        self.preset = preset
        self.policy, self.pre, self.post = policy, pre, post
        self.camera_map = camera_map  # robot camera -> policy image key
        self.checkpoint_dir = checkpoint_dir
        self.device = device
        if checkpoint_hash is None:
            checkpoint_hash = file_hash(checkpoint_dir / "model.safetensors") if checkpoint_dir else "in-memory"
        self.checkpoint_hash = checkpoint_hash
        self._lock = threading.Lock()  # one inference at a time (the policy object is not reentrant)
        self.warmup_ms = float("nan")

    @classmethod
    def load(
        cls,
        preset: Preset,
        robot_config: RobotConfig | None = None,
        robot_cameras: list[str] | None = None,
        warmup: bool = True,
    ) -> PolicyRuntime:
        """Load the preset's checkpoint for this robot. Raises PolicyMismatchError (from
        policy/checkpoint.py) when cameras, state or action disagree, before the model is built."""
        from lekiwi_drift.policy.checkpoint import (
            IMAGE_PREFIX,
            PolicyMismatchError,
            load_policy,
            resolve_checkpoint_dir,
            robot_features,
        )

        cams = list(
            robot_cameras
            if robot_cameras is not None
            else (robot_config.camera_names if robot_config is not None else [])
        )
        camera_map = preset.camera_map(cams)
        missing = [c for c in camera_map if c not in cams]
        if missing:
            raise PolicyMismatchError(
                f"preset {preset.source} maps robot camera(s) {missing} but the robot has [{', '.join(cams)}]; "
                "fix `cameras:` in the preset or the robot config"
            )
        ckpt = resolve_checkpoint_dir(preset.checkpoint)
        device = pick_device(preset.device)
        policy_cams = [k.removeprefix(IMAGE_PREFIX) for k in camera_map.values()]
        policy, pre, post = load_policy(
            ckpt,
            robot_features=robot_features(policy_cams, len(STATE_KEYS), len(STATE_KEYS)),
            vlm_dir=preset.vlm_dir or None,
            device=device,
            **preset.policy_overrides(),
        )
        rt = cls(preset, policy, pre, post, camera_map, ckpt, device)
        if warmup:
            rt.warm_up(cams)
        return rt

    # -- properties the loop and the TUI read ------------------------------------------------------
    @property
    def chunk_size(self) -> int:
        return int(self.policy.config.chunk_size)

    @property
    def n_action_steps(self) -> int:
        return int(min(self.policy.config.n_action_steps, self.chunk_size))

    def info(self) -> RuntimeInfo:
        c = self.policy.config
        return RuntimeInfo(
            str(self.checkpoint_dir),
            self.checkpoint_hash,
            c.objective,
            c.sampler,
            c.flow_steps,
            c.keystone_samples,
            self.chunk_size,
            self.n_action_steps,
            self.device,
            dict(self.camera_map),
            self.warmup_ms,
        )

    def describe(self) -> str:
        c = self.policy.config
        sampler = (
            f"flow, {c.flow_steps} steps"
            if c.sampler == "flow"
            else f"one-step drift + KeyStone K={c.keystone_samples} C={c.keystone_clusters} tau={c.keystone_tau:g}"
            if c.keystone_samples > 1
            else "one-step drift"
        )
        return (
            f"policy {self.preset.name}: {self.checkpoint_dir} (sha256 {self.checkpoint_hash}, trained "
            f"{c.objective}); sampler {sampler}; chunk {self.chunk_size}, execute {self.n_action_steps}; "
            f"{self.device}; cameras {self.camera_map}"
        )

    # -- inference ---------------------------------------------------------------------------------
    def batch(self, obs: Observation) -> dict:
        """A wire observation -> the raw (unprocessed) policy input: CHW float images in [0, 1]."""
        import torch

        raw: dict = {}
        for cam, key in self.camera_map.items():
            img = obs.images.get(cam)
            if img is None:
                raise KeyError(f"observation has no camera {cam!r} (it has {sorted(obs.images)})")
            raw[key] = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255.0)
        raw["observation.state"] = torch.from_numpy(np.asarray(obs.state, dtype=np.float32))
        raw["task"] = self.preset.task
        return raw

    def noise(self, seed: int):
        """The sampler's noise for one chunk, drawn from its own generator seeded with `seed` (so an
        evaluation can replay exactly the same samples; the robot uses fresh noise): [K or 1, T, A_max]."""
        import torch

        c = self.policy.config
        k = int(c.keystone_samples) if c.sampler == "drift" and int(c.keystone_samples) > 1 else 1
        gen = torch.Generator().manual_seed(int(seed))
        return torch.randn(k, int(c.chunk_size), int(c.max_action_dim), generator=gen).to(self.device)

    def infer(self, obs: Observation, t_obs: float | None = None, noise_seed: int | None = None) -> Chunk:
        """One chunk for `obs`. `t_obs`: the monotonic time the observation stands for (default: now
        minus its age); `noise_seed`: reproducible sampler noise (`noise()`), else the policy draws its
        own. Timings in `info`: prefix/expert/keystone ms from the policy, plus pre/post and the total
        wall time of this call."""
        import torch

        t_start = time.monotonic()
        if t_obs is None:
            t_obs = t_start - obs.age_s()
        with self._lock, torch.inference_mode():
            t0 = time.perf_counter()
            batch = self.pre(self.batch(obs))
            t1 = time.perf_counter()
            self.policy.reset()  # the loop owns the action queue; the policy's own queue stays unused
            noise = None if noise_seed is None else self.noise(noise_seed)
            chunk = self.policy.predict_action_chunk(batch, **({} if noise is None else {"noise": noise}))
            t2 = time.perf_counter()
            actions = self.post(chunk)
            t3 = time.perf_counter()
        actions = actions.detach().to("cpu", torch.float32).numpy()[0]
        info = dict(self.policy.last_chunk_info)
        info.update(
            pre_ms=(t1 - t0) * 1e3, policy_ms=(t2 - t1) * 1e3, post_ms=(t3 - t2) * 1e3, infer_ms=(t3 - t0) * 1e3
        )
        return Chunk(actions=actions, t_obs=t_obs, t_start=t_start, t_ready=time.monotonic(), info=info)

    def warm_up(self, cams: list[str], repeats: int = 3, size: tuple[int, int] = (96, 128)) -> float:
        """Run a couple of chunks on a blank observation: first calls allocate and compile kernels."""
        h, w = size
        obs = Observation(
            state=np.zeros(len(STATE_KEYS), np.float32), images={c: np.zeros((h, w, 3), np.uint8) for c in cams}
        )
        # The fastest of a few: the first calls allocate, and a busy machine makes single timings noisy.
        self.warmup_ms = min(self.infer(obs).info["infer_ms"] for _ in range(repeats))
        return self.warmup_ms
