"""`SimLeKiwi`: the simulated LeKiwi behind the host's robot protocol (robots/base.py).

Two clocks:
- lockstep: nothing moves on its own; each `send_action` applies the action and advances exactly one
  control period (1/30 s) of physics, and `get_observation` renders that very state. Same seed + same
  actions give identical observations, images included.
- realtime: a physics thread keeps sim time in step with wall time (times `realtime_factor`); a render
  thread draws the cameras as fast as the machine allows and `get_observation` serves the newest
  frames with the state as it is at the call; `send_action` only sets the actuator targets.
`clock()` is sim time in both, so the host's watchdog runs on sim time.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time

import numpy as np

from lekiwi_drift.sim.config import SimConfig
from lekiwi_drift.sim.gl import import_mujoco
from lekiwi_drift.sim.render import RenderWorker
from lekiwi_drift.sim.task import SuccessDetector
from lekiwi_drift.sim.world import SimWorld

mujoco = import_mujoco()

log = logging.getLogger(__name__)

_MAX_LAG_S = 0.25  # real time: if physics falls this far behind the wall clock, drop the backlog


class SimLeKiwi:
    def __init__(self, config: SimConfig | None = None):
        self.config = config or SimConfig()
        cfg = self.config
        self.cameras = {name: None for name in cfg.camera_names} if cfg.render else {}
        self.lockstep = cfg.clock == "lockstep"
        self.world = SimWorld(cfg)
        self.task = SuccessDetector(self.world)
        self.is_connected = False
        self._lock = threading.RLock()
        self._render: RenderWorker | None = None
        self._physics: threading.Thread | None = None
        self._running = threading.Event()
        self._anchor = (0.0, 0.0)  # (wall time, sim time) the real-time clock counts from
        self._steps = 0  # physics steps since the last reset (success is checked every control period)
        self.physics_lag_events = 0

    # -- the robot protocol ---------------------------------------------------------------------------
    def connect(self) -> None:
        if self.is_connected:
            return
        if self.config.render:
            self._render = RenderWorker(
                self.world.model,
                self.config.camera_names,
                self.config.width,
                self.config.height,
                self._snapshot,
                continuous=not self.lockstep,
                max_fps=self.config.camera_fps,
            )
            self._render.start()
        if not self.lockstep:
            self._running.set()
            self._reanchor()
            self._physics = threading.Thread(target=self._physics_loop, name="sim-physics", daemon=True)
            self._physics.start()
        self.is_connected = True
        # Its threads must end before the interpreter tears down MuJoCo and the EGL display, whatever
        # path the process exits by (docs/design.md, "Shutting down"): disconnect() runs at exit too.
        atexit.register(self.disconnect)

    def get_observation(self) -> dict[str, float | np.ndarray]:
        if self.config.render and self._render is None:
            raise RuntimeError("SimLeKiwi.get_observation() before connect(): no cameras yet")
        with self._lock:
            obs: dict = self.world.state()
        if self._render is not None:
            frames = self._render.render_now() if self.lockstep else self._render.latest()
            obs.update(frames)
        return obs

    def send_action(self, action: dict[str, float]) -> dict[str, float]:
        with self._lock:
            applied = self.world.apply(action)
            if self.lockstep:
                self._advance(self.config.substeps)
        return applied

    def stop_base(self) -> None:
        with self._lock:
            self.world.stop_base()

    def disconnect(self) -> None:
        atexit.unregister(self.disconnect)
        self.stop_base()
        self._running.clear()
        if self._physics is not None:
            self._physics.join(timeout=5.0)
            self._physics = None
        if self._render is not None:
            self._render.stop()
            self._render = None
        self.is_connected = False

    # -- host hooks -----------------------------------------------------------------------------------
    def clock(self) -> float:
        return self.world.time

    def header_extras(self) -> dict:
        with self._lock:
            return {
                "_success": bool(self.task.success),
                "_item": self.world.item,
                "_seed": int(self.world.layout.seed),
                "_scene": self.world.layout.scene,
                "_sim_time": round(self.world.time, 6),
                "_success_time": self.task.first_success_time,
                "_clock": self.config.clock,
            }

    def handle_request(self, request: dict) -> dict:
        """`{"op": "reset", "item": ..., "seed": ..., "scene": ...}`: a fresh scene. A missing item, seed
        or scene keeps the current one, so `{"op": "reset"}` repeats the same scene exactly. `scene`: the
        fixed layout that `seed` jitters (scene.py), or null for a layout drawn from `seed` alone."""
        op = request.get("op")
        if op != "reset":
            raise ValueError(f"unknown sim request op {op!r}; the sim understands 'reset'")
        with self._lock:
            item = str(request.get("item") or self.world.item)
            seed = int(request.get("seed", self.world.layout.seed))
            scene = request.get("scene", self.world.layout.scene)
            scene = None if scene is None else int(scene)
            self.world.reset(item, seed, scene)
            self.task.reset()
            self._steps = 0
            self._reanchor()
        return {"op": "reset", "item": item, "seed": seed, "scene": scene}

    # -- internals ------------------------------------------------------------------------------------
    def _advance(self, n: int) -> None:
        """Step physics n times (caller holds the lock), checking success every control period."""
        per = self.config.substeps
        for _ in range(n):
            self.world.step(1)
            self._steps += 1
            if self._steps % per == 0:
                self.task.update()

    def _snapshot(self, dst: mujoco.MjData) -> None:
        with self._lock:
            d = self.world.data
            dst.qpos[:] = d.qpos
            dst.mocap_pos[:] = d.mocap_pos
            dst.mocap_quat[:] = d.mocap_quat
            dst.time = d.time

    def _reanchor(self) -> None:
        self._anchor = (time.monotonic(), self.world.time)

    def _physics_loop(self) -> None:
        dt = self.world.model.opt.timestep
        factor = self.config.realtime_factor
        while self._running.is_set():
            with self._lock:
                wall0, sim0 = self._anchor
                target = sim0 + (time.monotonic() - wall0) * factor
                behind = target - self.world.time
                if behind > _MAX_LAG_S:
                    # The machine cannot keep up: let sim time slip rather than run a catch-up burst.
                    self.physics_lag_events += 1
                    if self.physics_lag_events in (1, 10, 100) or self.physics_lag_events % 1000 == 0:
                        log.warning(
                            "sim physics fell %.2f s behind wall time (%d times so far); sim time "
                            "slips instead of catching up in a burst",
                            behind,
                            self.physics_lag_events,
                        )
                    self._anchor = (time.monotonic(), self.world.time)
                    behind = 0.0
                # Step in slices of at most one control period so the lock is released often.
                n = min(int(behind / dt), self.config.substeps)
                if n > 0:
                    self._advance(n)
            if n <= 0:
                time.sleep(max(dt - behind, 0.0005) / factor)
