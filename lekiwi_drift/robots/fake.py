"""A fake LeKiwi: motor state that follows commands, synthetic camera frames with a visible counter.

It stands in for the hardware only (serial bus and USB cameras), so the host, the client and the
whole wire run for real in tests and demos. It also fits LeRobot's stock host loop (`cameras`,
`stop_base`), which lets tests serve a stock `LeKiwiClient` from LeRobot's own host code. Base stops and
the torque release are logged at debug level with the fake's clock, so a test can see them happen inside
a host process (`lekiwi-drift -v host --robot fake`).
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from dataclasses import dataclass, field

import cv2
import numpy as np

from lekiwi_drift.robots.features import ARM_KEYS, BASE_KEYS, JOINT_LIMITS_DEG, STATE_KEYS, STOP_BASE

log = logging.getLogger(__name__)

CAMERA_TINTS = {"front": (200, 90, 40), "wrist": (40, 160, 90), "top": (60, 80, 200)}


class FakeReadError(RuntimeError):
    """Raised by the fake when a read failure was injected (like a camera timeout or bus error)."""


@dataclass
class FakeRobotConfig:
    camera_names: tuple[str, ...] = ("front", "wrist", "top")
    width: int = 640
    height: int = 480
    arm_speed_deg_s: float = 180.0  # how fast the fake joints move toward their goal
    release_on_exit: bool = True
    # Sensor-like noise in the frames: real camera images compress (and decode) like this, flat
    # synthetic ones are several times cheaper. The link benchmark uses it to stay honest.
    texture: bool = False
    # How far this robot's wall clock (`_stamp`) is off the real one: a Pi without network time.
    clock_skew_s: float = 0.0


@dataclass
class FakeEvents:
    """What the fake saw, on its own clock, for tests: applied actions and base stops."""

    actions: list[tuple[float, dict]] = field(default_factory=list)
    base_stops: list[float] = field(default_factory=list)


class FakeLeKiwi:
    def __init__(self, config: FakeRobotConfig | None = None):
        self.config = config or FakeRobotConfig()
        self.cameras = {name: None for name in self.config.camera_names}
        self.events = FakeEvents()
        self.torque_enabled = False
        self.is_connected = False
        self._lock = threading.Lock()
        self._arm = {k: 0.0 for k in ARM_KEYS}
        self._arm["arm_gripper.pos"] = 50.0
        self._goal = dict(self._arm)
        self._base = dict(STOP_BASE)
        self._last_update = time.monotonic()
        self._frame = 0
        self._fail_next = 0
        self._backgrounds = {n: self._background(n) for n in self.config.camera_names}

    # -- the robot protocol --------------------------------------------------------------------
    def clock(self) -> float:
        return time.monotonic()

    def wall_clock(self) -> float:
        return time.time() + self.config.clock_skew_s

    def connect(self) -> None:
        self.is_connected = True
        self.torque_enabled = True

    def get_observation(self) -> dict:
        with self._lock:
            if self._fail_next > 0:
                self._fail_next -= 1
                raise FakeReadError("injected read failure (fake camera timeout)")
            self._advance()
            self._frame += 1
            obs: dict = {**self._arm, **self._base}
            frame_no = self._frame
        for name in self.config.camera_names:
            obs[name] = self._render(name, frame_no)
        return obs

    def send_action(self, action: dict) -> dict:
        with self._lock:
            self._advance()
            for k in ARM_KEYS:
                lo, hi = JOINT_LIMITS_DEG[k]
                self._goal[k] = float(np.clip(action[k], lo, hi))
            self._base = {k: float(action[k]) for k in BASE_KEYS}
            sent = {**self._goal, **self._base}
            self.events.actions.append((self.clock(), sent))
        return sent

    def stop_base(self) -> None:
        with self._lock:
            self._base = dict(STOP_BASE)
            t = self.clock()
            self.events.base_stops.append(t)
        log.debug("fake robot: base stopped (clock %.6f)", t)

    def disconnect(self) -> None:
        self.stop_base()
        if self.config.release_on_exit:
            self.torque_enabled = False
            log.debug("fake robot: torque released (clock %.6f)", self.clock())
        self.is_connected = False

    # -- test hooks ------------------------------------------------------------------------------
    def inject_read_failures(self, n: int) -> None:
        with self._lock:
            self._fail_next = n

    @property
    def base_moving(self) -> bool:
        return any(abs(v) > 0 for v in self._base.values())

    def state(self) -> dict[str, float]:
        with self._lock:
            return {k: ({**self._arm, **self._base})[k] for k in STATE_KEYS}

    # -- internals -----------------------------------------------------------------------------
    def _advance(self) -> None:
        """Move joints toward their goals at a bounded speed (first-order servo stand-in)."""
        now = time.monotonic()
        step = self.config.arm_speed_deg_s * (now - self._last_update)
        self._last_update = now
        if not self.torque_enabled:
            return
        for k in ARM_KEYS:
            delta = self._goal[k] - self._arm[k]
            self._arm[k] += float(np.clip(delta, -step, step))

    def _background(self, name: str) -> np.ndarray:
        h, w = self.config.height, self.config.width
        tint = np.array(CAMERA_TINTS.get(name, (128, 128, 128)), dtype=np.float32)
        ramp = np.linspace(0.35, 1.0, w, dtype=np.float32)[None, :, None]
        vramp = np.linspace(0.6, 1.0, h, dtype=np.float32)[:, None, None]
        img = (tint[None, None, :] * ramp * vramp).astype(np.uint8)
        if self.config.texture:
            rng = np.random.default_rng(zlib.crc32(name.encode()))
            noise = rng.normal(0.0, 12.0, size=(h, w, 3)).astype(np.float32)
            img = np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
        cv2.putText(img, name, (12, h - 16), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
        return img

    def _render(self, name: str, frame_no: int) -> np.ndarray:
        img = self._backgrounds[name].copy()
        h, w = img.shape[:2]
        x = int((frame_no * 7) % max(1, w - 40))  # a moving block makes motion visible
        img[h // 2 - 20 : h // 2 + 20, x : x + 40] = 255
        cv2.putText(img, f"#{frame_no}", (12, 48), cv2.FONT_HERSHEY_SIMPLEX, 1.4, (255, 255, 255), 3)
        return img
