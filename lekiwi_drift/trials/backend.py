"""What the trials TUI needs from the robot side, and the real implementation of it.

The trial logic depends only on two small protocols: `EpisodeRunner` (the control loop for one policy:
run one episode, e-stop it) and `TrialBackend` (start, per-policy runners, scene reset, stop action).
`RobotBackend` implements them with one `RobotLink` shared by every policy, one `PolicyRuntime` per
policy loaded once for the whole session, and one `ControlLoop` per policy. torch, the policy and the
link are imported when `start()` runs, in a worker thread after the first screen is up.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any, Callable, Protocol

from lekiwi_drift.config.robot import RobotConfig
from lekiwi_drift.trials.protocol import Protocol as TrialProtocol

log = logging.getLogger(__name__)


class EpisodeRunner(Protocol):
    """The part of `ControlLoop` the trials need (tests drive the TUI with a small deterministic one)."""

    def run_episode(self, max_time_s: float, stop: threading.Event,
                    on_status: Callable[[Any], None] | None = None) -> Any: ...

    def estop(self) -> None: ...


class TrialBackend(Protocol):
    sim: bool  # the robot is simulated: reset by request, score by the success detector

    def start(self, progress: Callable[[str], None]) -> None: ...

    def runner(self, policy: str) -> EpisodeRunner: ...

    def checkpoint(self, policy: str) -> tuple[str | None, str | None]: ...

    def reset_scene(self, item: str, seed: int) -> str: ...

    def stop_robot(self) -> None: ...

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
    """The real robot (or the sim, through the same wire). `sim_host`: start a simulated LeKiwi in this
    process (`--sim`); otherwise connect to the host in the robot config."""

    def __init__(self, robot_config: RobotConfig, protocol: TrialProtocol, sim_host: bool = False,
                 sim_clock: str = "realtime", scene_seed: int = 0, video_dir=None):
        """`video_dir`: save a rollout GIF of every trial under video_dir/<policy>/ (control/rollout_video.py)."""
        self.robot_config = robot_config
        self.protocol = protocol
        self.sim_host = sim_host
        self.sim_clock = sim_clock
        self.scene_seed = scene_seed
        self.video_dir = video_dir
        self.sim = sim_host
        self._local = None
        self._link = None
        self._loops: dict[str, Any] = {}
        self._runtimes: dict[str, Any] = {}

    def start(self, progress: Callable[[str], None]) -> None:
        from lekiwi_drift.control.preset import load_preset

        presets = {}
        for name in self.protocol.policies:
            # The protocol's prompt wins: every policy in a session is asked the same thing.
            presets[name] = dataclasses.replace(load_preset(name), task=self.protocol.task)
        cfg = self.robot_config
        if self.sim_host:
            from lekiwi_drift.sim.local import start_local_sim_host

            progress("starting the simulated LeKiwi")
            size = presets[self.protocol.policies[0]].sim_size  # the camera size the demos were recorded at
            self._local = start_local_sim_host(cfg, item=self.protocol.item, seed=self.scene_seed,
                                               clock=self.sim_clock, size=size, scene=self._scene())
            cfg = self._local.config
        from lekiwi_drift.link.client import RobotLink

        progress(f"connecting to the robot at {cfg.host.address}:{cfg.host.port_obs}")
        self._link = RobotLink(cfg)
        first = self._link.connect()
        # A sim served by `lekiwi-drift host --robot sim` elsewhere counts as a sim too.
        self.sim = self.sim_host or "_success" in first.extras
        from lekiwi_drift.control.loop import ControlLoop
        from lekiwi_drift.control.runtime import PolicyRuntime
        from lekiwi_drift.control.sim_time import LatencyProfile

        latency = None
        if self.protocol.latency is not None:
            if first.extras.get("_clock") != "lockstep":
                raise RuntimeError(f"the protocol charges latency in sim time ({self.protocol.latency}); that needs "
                                   "the lockstep sim (--sim --sim-clock lockstep)")
            latency = LatencyProfile.parse(self.protocol.latency)

        for i, (name, preset) in enumerate(presets.items(), 1):
            progress(f"loading policy {i}/{len(presets)} (kept warm for the whole session)")
            runtime = PolicyRuntime.load(preset, cfg)
            self._runtimes[name] = runtime
            video = None
            if self.video_dir is not None:
                from pathlib import Path

                from lekiwi_drift.control.rollout_video import RolloutVideo

                video = RolloutVideo(Path(self.video_dir) / name.replace("/", "_"), hz=preset.control_hz)
            self._loops[name] = ControlLoop(self._link, runtime, preset, cfg, run_dir=None, latency=latency,
                                            video=video)
        progress("ready")

    def runner(self, policy: str) -> EpisodeRunner:
        return self._loops[policy]

    def checkpoint(self, policy: str) -> tuple[str | None, str | None]:
        rt = self._runtimes.get(policy)
        return (str(rt.checkpoint_dir), rt.checkpoint_hash) if rt is not None else (None, None)

    def reset_scene(self, item: str, seed: int) -> str:
        if not self.sim:
            return f"reset the scene by hand: {item.replace('_', ' ')} in its place, basket empty, arm home"
        reply = self._link.request({"op": "reset", "item": item, "seed": seed, "scene": self._scene()})
        scene = reply.get("scene")
        where = f"scene {scene}, jitter seed" if scene is not None else "layout seed"
        return f"sim scene reset: {reply.get('item', item)}, {where} {reply.get('seed', seed)}"

    def _scene(self) -> int | None:
        """The fixed layout the reset seeds jitter (None: each seed is a layout of its own)."""
        p = self.protocol
        return None if p.vary_scene or not p.jitter else p.scene_seed

    def stop_robot(self) -> None:
        """Base velocities zero, arm held where it is now (the newest observed joint positions)."""
        from lekiwi_drift.robots.features import BASE_KEYS, STATE_KEYS

        link = self._link
        obs = link.latest() if link is not None else None
        if obs is None:
            return
        action = {k: float(v) for k, v in zip(STATE_KEYS, obs.state)}
        action.update({k: 0.0 for k in BASE_KEYS})
        try:
            link.send_action(action)
        except ConnectionError as exc:  # closed link: nothing is moving that we could still stop
            log.warning("stop action not sent: %s", exc)

    def close(self) -> None:
        for loop in self._loops.values():
            loop.close()
        self._loops.clear()
        if self._link is not None:
            self.stop_robot()
            self._link.close()
            self._link = None
        if self._local is not None:
            self._local.stop()
            self._local = None
