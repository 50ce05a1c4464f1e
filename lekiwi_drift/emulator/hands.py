"""A person's hands on an emulated arm: what LeRobot's calibration asks for ("move each joint through its
entire range"), and a demonstrator moving the leader along a scripted path (`play`), done by threads
turning the shafts of torque-free servos.

It only moves servos whose torque is off, as a hand cannot back-drive a holding servo; a joint whose
servo holds is reported in `SweepResult.refused`, so a test sees it rather than a silently short range.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from lekiwi_drift.emulator.bus import EmulatedBus


@dataclass
class SweepPlan:
    """Joints (servo IDs) to sweep one after another, each from where it is to `lo`, then `hi`, then back
    to where it started; positions are shaft steps."""

    ranges: dict[int, tuple[float, float]]
    seconds_per_joint: float = 0.4
    steps_per_joint: int = 40
    # A person holds a joint against its end stop for a moment; LeRobot samples the positions every
    # ~20 ms or slower, and would miss an end stop touched for one instant.
    dwell_s: float = 0.15


@dataclass
class SweepResult:
    done: threading.Event = field(default_factory=threading.Event)
    refused: list[int] = field(default_factory=list)  # IDs whose torque was on


def _path(start: float, lo: float, hi: float, n: int) -> list[float]:
    """start -> lo -> hi -> start, in about n evenly spread points."""
    legs = [(start, lo), (lo, hi), (hi, start)]
    total = sum(abs(b - a) for a, b in legs) or 1.0
    out = []
    for a, b in legs:
        k = max(2, round(n * abs(b - a) / total))
        out += [a + (b - a) * i / (k - 1) for i in range(k)]
    return out


def sweep(bus: EmulatedBus, plan: SweepPlan) -> SweepResult:
    """Start sweeping in a background thread; `result.done` is set when every joint is back."""
    result = SweepResult()

    def run() -> None:
        try:
            for sid, (lo, hi) in plan.ranges.items():
                with bus.lock:
                    servo = bus.servo(sid)
                    start = servo.drive.actual()
                pause = plan.seconds_per_joint / plan.steps_per_joint
                for pos in _path(start, lo, hi, plan.steps_per_joint):
                    with bus.lock:
                        if not servo.hand_move(pos):
                            result.refused.append(sid)
                            break
                    time.sleep(plan.dwell_s if pos in (lo, hi) else pause)
        finally:
            result.done.set()

    threading.Thread(target=run, name=f"hand-{bus.config.name}", daemon=True).start()
    return result


# A leader arm moved along a fixed path: degrees for the body joints, 0-100 for the gripper, as LeRobot
# reads an SO-101 calibrated around its middle. Periods differ per joint so the path does not repeat soon.
WAVE = {
    "shoulder_pan": (0.0, 20.0, 4.0),  # (centre, amplitude, period s)
    "shoulder_lift": (0.0, 12.0, 3.0),
    "elbow_flex": (-10.0, 10.0, 5.0),
    "wrist_flex": (0.0, 15.0, 2.5),
    "wrist_roll": (0.0, 0.0, 1.0),
    "gripper": (40.0, 25.0, 3.5),
}


def wave_value(joint: str, t: float) -> float:
    centre, amplitude, period = WAVE[joint]
    return centre + amplitude * math.sin(2 * math.pi * t / period)


@dataclass
class Playback:
    stop: threading.Event = field(default_factory=threading.Event)
    refused: list[int] = field(default_factory=list)
    started: float = 0.0


def play(bus: EmulatedBus, path: Callable[[float], dict[int, float]], rate_hz: float = 60.0) -> Playback:
    """Move torque-free servos along `path(t) -> {servo ID: shaft steps}` until `playback.stop` is set."""
    playback = Playback(started=time.monotonic())

    def run() -> None:
        while not playback.stop.wait(1.0 / rate_hz):
            targets = path(time.monotonic() - playback.started)
            with bus.lock:
                for sid, steps in targets.items():
                    if not bus.servo(sid).hand_move(steps) and sid not in playback.refused:
                        playback.refused.append(sid)

    threading.Thread(target=run, name=f"play-{bus.config.name}", daemon=True).start()
    return playback
