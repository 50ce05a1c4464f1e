"""Recovery demonstrations (DART: Laskey et al., 2017): perturb what the robot executes, record what the
expert wants.

A policy trained on clean demonstrations has only seen states on the expert's own path; its first small
error takes it somewhere no demonstration went, and errors compound. Here the executed action gets a
perturbation now and then (a burst of a few ticks with a constant offset on the arm joints and base
velocities), while the dataset stores the expert's clean action for the perturbed state it saw. The
expert reacts to the true state (the base controller closes the loop on the base pose; the arm's target
generator pulls the arm back to its plan), so the labels show the way back to the demonstration path.

Only the scripted sim expert can label a state it did not choose; a human at the leader arm is
perturbed by nothing here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lekiwi_drift.robots.features import ARM_KEYS, BASE_KEYS


@dataclass(frozen=True)
class NoiseConfig:
    scale: float = 1.0  # 0 = no perturbation; multiplies the standard deviations below
    burst_rate_hz: float = 0.6  # mean bursts per second
    burst_ticks: tuple[int, int] = (4, 12)  # burst length, uniform in this range (ticks)
    joint_std_deg: float = 3.0  # arm joints (the gripper is never perturbed)
    linear_std: float = 0.04  # m/s, x.vel and y.vel
    angular_std_deg: float = 8.0  # deg/s, theta.vel


class ActionNoise:
    """`perturb(action) -> action`: the action to execute this tick (a new dict; the input is untouched)."""

    def __init__(self, config: NoiseConfig, seed: int):
        self.config = config
        self.rng = np.random.default_rng([int(seed), 0xDA27])
        self._left = 0  # ticks left in the current burst
        self._offset: dict[str, float] = {}
        self.bursts = 0
        self.perturbed_ticks = 0

    def perturb(self, action: dict[str, float], fps: float = 30.0) -> dict[str, float]:
        c = self.config
        if c.scale <= 0:
            return dict(action)
        if self._left == 0 and self.rng.random() < c.burst_rate_hz / fps:
            lo, hi = c.burst_ticks
            self._left = int(self.rng.integers(lo, hi + 1))
            self._offset = self._draw()
            self.bursts += 1
        if self._left == 0:
            return dict(action)
        self._left -= 1
        self.perturbed_ticks += 1
        return {k: v + self._offset.get(k, 0.0) for k, v in action.items()}

    def _draw(self) -> dict[str, float]:
        c = self.config
        std = {k: c.joint_std_deg for k in ARM_KEYS if "gripper" not in k}
        std.update({"x.vel": c.linear_std, "y.vel": c.linear_std, "theta.vel": c.angular_std_deg})
        assert set(std) <= set(ARM_KEYS) | set(BASE_KEYS)
        return {k: float(self.rng.normal(0.0, s * c.scale)) for k, s in std.items()}
