"""Where a teleop action comes from, and the safety clamp every action passes before it is sent.

Sources (each `action(obs) -> {9 keys: float}`):
- `LeaderSource`: arm from the SO-101 leader, base from the keyboard (the real-robot setup).
- `ScriptedSource`: the sim host's scripted expert (`_expert` header key, `lekiwi-drift host --expert`);
  base keys pressed on the keyboard override the expert's base command while the base is moving.
- `KeyboardSource`: base from the keyboard, the arm holds where it was when teleop started.
The recorded action is the clamped one, i.e. exactly what went over the wire.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Protocol

import numpy as np

from lekiwi_drift.link.wire import Observation
from lekiwi_drift.robots.features import (
    ARM_KEYS,
    BASE_KEYS,
    JOINT_LIMITS_DEG,
    MAX_ANGULAR_SPEED_DEG,
    MAX_LINEAR_SPEED,
    STATE_KEYS,
)

BASE_CAPS = {"x.vel": MAX_LINEAR_SPEED, "y.vel": MAX_LINEAR_SPEED, "theta.vel": MAX_ANGULAR_SPEED_DEG}
EXPERT_KEY = "_expert"


class SourceError(RuntimeError):
    """An action source cannot produce actions (with the reason and the fix)."""


def clamp_action(action: Mapping[str, float]) -> dict[str, float]:
    """Clamp a 9-key action to the arm's joint limits and the base speed caps (robots/features.py).
    A missing or non-finite value raises ValueError: no guess is safer than a wrong one."""
    out = {}
    for key in STATE_KEYS:
        value = action.get(key)
        if value is None or not math.isfinite(float(value)):
            raise ValueError(f"action {key!r} is {value!r}")
        value = float(value)
        if key in JOINT_LIMITS_DEG:
            lo, hi = JOINT_LIMITS_DEG[key]
        else:
            hi = BASE_CAPS[key]
            lo = -hi
        out[key] = min(max(value, lo), hi)
    return out


def action_vector(action: Mapping[str, float]) -> np.ndarray:
    return np.array([action[k] for k in STATE_KEYS], dtype=np.float32)


class ActionSource(Protocol):
    name: str

    def action(self, obs: Observation) -> dict[str, float]: ...


class KeyboardBase(Protocol):
    def velocity(self) -> dict[str, float]: ...

    def moving(self) -> bool: ...


class ScriptedSource:
    name = "scripted expert"

    def __init__(self, keyboard: KeyboardBase | None = None):
        self.keyboard = keyboard

    def action(self, obs: Observation) -> dict[str, float]:
        expert = obs.extras.get(EXPERT_KEY)
        if not isinstance(expert, dict):
            raise SourceError(
                "the host publishes no scripted-expert action (header key `_expert`). Serve the "
                "sim with `lekiwi-drift host --robot sim --expert`, or use `lekiwi-drift teleop "
                "--sim` (which starts its own sim host)"
            )
        action = {k: float(expert[k]) for k in STATE_KEYS if k in expert}
        if self.keyboard is not None and self.keyboard.moving():
            action.update(self.keyboard.velocity())
        return action


class KeyboardSource:
    name = "keyboard (arm holds)"

    def __init__(self, keyboard: KeyboardBase):
        self.keyboard = keyboard
        self._arm: dict[str, float] | None = None

    def action(self, obs: Observation) -> dict[str, float]:
        if self._arm is None:  # hold the pose the arm had when teleop started
            self._arm = {k: float(v) for k, v in zip(ARM_KEYS, obs.state[: len(ARM_KEYS)])}
        return {**self._arm, **self.keyboard.velocity()}


class LeaderSource:
    name = "SO-101 leader + keyboard"

    def __init__(self, leader, keyboard: KeyboardBase):
        self.leader = leader  # teleop.leader.LeaderArm (connected)
        self.keyboard = keyboard

    def action(self, obs: Observation) -> dict[str, float]:
        arm = self.leader.read()
        return {**{k: arm[k] for k in ARM_KEYS}, **self.keyboard.velocity()}


def stop_base_action(obs: Observation, last: Mapping[str, float] | None) -> dict[str, float]:
    """Hold the arm (at the last command, else where it is) and stop the base."""
    arm = {k: float(last[k]) for k in ARM_KEYS} if last else dict(zip(ARM_KEYS, map(float, obs.state[:6])))
    return {**arm, **{k: 0.0 for k in BASE_KEYS}}
