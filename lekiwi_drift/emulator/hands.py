"""A person's hands on an emulated arm: what LeRobot's calibration asks for ("move each joint through its
entire range"), done by a thread turning the shafts of torque-free servos.

It only moves servos whose torque is off, as a hand cannot back-drive a holding servo; a joint whose
servo holds is reported in `SweepResult.refused`, so a test sees it rather than a silently short range.
"""

from __future__ import annotations

import threading
import time
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
