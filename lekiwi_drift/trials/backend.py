"""What the trials TUI needs from the robot side, and the real implementation of it.

The trial logic depends only on two small protocols: `EpisodeRunner` (the control loop for one policy:
run one episode, e-stop it) and `TrialBackend` (start, per-policy runners, scene reset, stop action).
`RobotBackend` implements them with one `RobotSession` (control/session.py): one link shared by every
policy, one `PolicyRuntime` and `ControlLoop` per policy loaded once for the whole session. torch, the policy and the
link are imported when `start()` runs, in a worker thread after the first screen is up.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any, Protocol

from lekiwi_drift.config.robot import RobotConfig
from lekiwi_drift.trials.protocol import Protocol as TrialProtocol


class EpisodeRunner(Protocol):
    """The part of `ControlLoop` the trials need (tests drive the TUI with a small deterministic one)."""

    def run_episode(
        self, max_time_s: float, stop: threading.Event, on_status: Callable[[Any], None] | None = None
    ) -> Any: ...

    def estop(self) -> None: ...


class TrialBackend(Protocol):
    sim: bool  # the robot is simulated: reset by request, score by the success detector

    def start(self, progress: Callable[[str], None]) -> None: ...

    def runner(self, policy: str) -> EpisodeRunner: ...

    def checkpoint(self, policy: str) -> tuple[str | None, str | None]: ...

    def reset_scene(self, item: str, seed: int) -> str: ...

    def estop(self) -> None:
        """The one stop path (every e-stop, and closing): one hold through the safety layer."""

    def close(self) -> None: ...


@dataclasses.dataclass
class LoopFailure:
    """Stands in for an EpisodeResult when the runner itself raised: the trial ends as an error."""

    error: str
    outcome: str = "error"
    duration_s: float = 0.0
    auto_success: bool | None = None
    telemetry: dict = dataclasses.field(default_factory=dict)


class RobotBackend:
    """The real robot (or the sim, through the same wire), as one `RobotSession` (control/session.py)
    holding every policy of the protocol. `sim_host`: start a simulated LeKiwi in this process (`--sim`);
    otherwise connect to the host in the robot config."""

    def __init__(
        self,
        robot_config: RobotConfig,
        protocol: TrialProtocol,
        sim_host: bool = False,
        sim_clock: str = "realtime",
        scene_seed: int = 0,
        video_dir=None,
    ):
        """`video_dir`: save a rollout MP4 of every trial under video_dir/<policy>/ (control/rollout_video.py)."""
        self.robot_config = robot_config
        self.protocol = protocol
        self.sim_host = sim_host
        self.sim_clock = sim_clock
        self.scene_seed = scene_seed
        self.video_dir = video_dir
        self.sim = sim_host
        self._session = None

    def start(self, progress: Callable[[str], None]) -> None:
        from pathlib import Path

        from lekiwi_drift.control.preset import load_preset
        from lekiwi_drift.control.runtime import PolicyRuntime
        from lekiwi_drift.control.session import RobotSession, SimSpec

        presets = {}
        for name in self.protocol.policies:
            # The protocol's prompt wins: every policy in a session is asked the same thing.
            presets[name] = dataclasses.replace(load_preset(name), task=self.protocol.task)
        sim = None
        if self.sim_host:  # cameras at the size the demos were recorded at
            sim = SimSpec(
                item=self.protocol.item,
                seed=self.scene_seed,
                clock=self.sim_clock,
                size=presets[self.protocol.policies[0]].sim_size,
                scene=self._scene(),
            )
        self._session = session = RobotSession(self.robot_config, sim=sim, latency=self.protocol.latency)
        session.open(progress)
        self.sim = session.is_sim
        for i, (name, preset) in enumerate(presets.items(), 1):
            progress(f"loading policy {i}/{len(presets)} (kept warm for the whole session)")
            runtime = PolicyRuntime.load(preset, session.config)
            video = Path(self.video_dir) / name.replace("/", "_") if self.video_dir is not None else None
            session.add_policy(name, runtime, video_dir=video)
        progress("ready")

    def runner(self, policy: str) -> EpisodeRunner:
        return _SessionRunner(self._session, policy)

    def checkpoint(self, policy: str) -> tuple[str | None, str | None]:
        loop = self._session.loops.get(policy) if self._session is not None else None
        if loop is None:
            return None, None
        return str(loop.runtime.checkpoint_dir), loop.runtime.checkpoint_hash

    def reset_scene(self, item: str, seed: int) -> str:
        if not self.sim:
            return f"reset the scene by hand: {item.replace('_', ' ')} in its place, basket empty, arm home"
        reply = self._session.reset(item, seed, self._scene())
        scene = reply.get("scene")
        where = f"scene {scene}, jitter seed" if scene is not None else "layout seed"
        return f"sim scene reset: {reply.get('item', item)}, {where} {reply.get('seed', seed)}"

    def _scene(self) -> int | None:
        """The fixed layout the reset seeds jitter (None: each seed is a layout of its own)."""
        p = self.protocol
        return None if p.vary_scene or not p.jitter else p.scene_seed

    def estop(self) -> None:
        """The one stop path: the running trial's loop e-stops, or one hold between trials."""
        if self._session is not None:
            self._session.stop()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


class _SessionRunner:
    """One policy of the session, as the trial screens run it."""

    def __init__(self, session, policy: str):
        self.session, self.policy = session, policy

    def run_episode(
        self, max_time_s: float, stop: threading.Event, on_status: Callable[[Any], None] | None = None
    ) -> Any:
        return self.session.run_episode(self.policy, max_time_s, stop=stop, on_status=on_status)

    def estop(self) -> None:
        self.session.stop()
