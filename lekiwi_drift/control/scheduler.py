"""The timestamped action queue, latency compensation, and when to ask for the next chunk.

Every chunk carries the monotonic time of the observation it was conditioned on, `t_obs`; its action i
is meant for t_obs + i / hz. In `async` mode a chunk that lands after L seconds has its first
round(L·hz) actions already in the past: they are dropped (never replayed), and the rest replace what
was left of the previous chunk (Diffusion Policy's real-robot scheme). In `sync` mode the robot held
still while the policy thought, so the chunk starts at index 0 when it lands (its clock is re-anchored
to the landing time); the cost shows up as stall ticks instead.

The next inference starts, in `async`, when the actions left are no more than the expected latency in
ticks plus a margin; in `sync`, when the queue is empty.

What `pop` measures (so that a problem shows up as a number): an action is *late* when it is sent more
than half a period after its slot (slot i = t0 + i·period; judged at the send time the loop passes);
*skipped* actions are those of the current chunk jumped over because the loop overran (async; the ones
dropped at install for latency compensation are counted separately as `dropped`); the *boundary jump*
is the difference between the last action executed and the first one executed from a new chunk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

N_ARM = 6  # features.STATE_KEYS: 6 arm joints (degrees; the gripper 0..100), then x.vel, y.vel, theta.vel


@dataclass
class Chunk:
    actions: np.ndarray  # [T, 9] unnormalised actions, features.STATE_KEYS order
    t_obs: float  # monotonic time of the observation it was conditioned on
    t_start: float = 0.0  # monotonic time inference started
    t_ready: float = 0.0  # monotonic time it was ready
    info: dict = field(default_factory=dict)  # prefix_ms, expert_ms, keystone_ms, spread, guard, ...
    index: int = 0  # chunk number within the episode

    @property
    def latency_s(self) -> float:
        return self.t_ready - self.t_obs


@dataclass
class Installed:
    dropped: int  # actions whose time had passed when the chunk landed (async latency compensation)
    usable: int  # actions left to execute from this chunk
    replaced: int  # actions of the previous chunk that were still queued and were superseded


class Popped(NamedTuple):
    action: np.ndarray | None  # the action for this tick, None if the queue is empty
    late: bool = False  # sent more than half a period after its slot
    skipped: int = 0  # actions of the current chunk jumped over on this call (the loop overran)
    jump: np.ndarray | None = None  # first action from a new chunk: |new - last executed| per channel


class ActionSchedule:
    """Holds the current chunk and hands out one action per tick by time."""

    def __init__(self, hz: float, n_action_steps: int, mode: str, margin_ticks: int = 2):
        if mode not in ("sync", "async"):
            raise ValueError(f"mode must be 'sync' or 'async', got {mode!r}")
        self.period = 1.0 / hz
        self.n_action_steps = n_action_steps
        self.mode = mode
        self.margin_ticks = margin_ticks
        self.latency_ticks_ema: float | None = None  # expected inference latency, in ticks
        self._chunk: Chunk | None = None
        self._t0 = 0.0  # time of action 0 of the current chunk
        self._next = 0  # next index to execute
        self._last_action: np.ndarray | None = None  # the last action handed out (any chunk)
        self._fresh = False  # no action handed out from the current chunk yet
        self.late_actions = 0  # running totals (the per-call figures are in `Popped`)
        self.skipped_actions = 0

    def reset(self) -> None:
        self._chunk, self._next, self._last_action, self._fresh = None, 0, None, False

    @property
    def chunk_index(self) -> int:
        """The index of the chunk being executed (-1 before the first)."""
        return self._chunk.index if self._chunk is not None else -1

    # -- chunks in -----------------------------------------------------------------------------------
    def observe_latency(self, latency_s: float) -> None:
        ticks = latency_s / self.period
        ema = self.latency_ticks_ema
        self.latency_ticks_ema = ticks if ema is None else 0.7 * ema + 0.3 * ticks

    def _index_at(self, now: float) -> int:
        """The action index whose slot contains `now` (slots are centred on t0 + i·period)."""
        return int(math.floor((now - self._t0) / self.period + 0.5))

    def install(self, chunk: Chunk, now: float) -> Installed:
        replaced = self.remaining(now)
        self._chunk = chunk
        self._fresh = True
        horizon = min(self.n_action_steps, len(chunk.actions))
        if self.mode == "sync":
            self._t0, self._next, dropped = now, 0, 0
        else:
            self._t0 = chunk.t_obs
            first = max(self._index_at(now), 0)
            dropped = min(first, horizon)
            self._next = first
        return Installed(dropped=dropped, usable=max(horizon - self._next, 0), replaced=replaced)

    # -- actions out ---------------------------------------------------------------------------------
    def pop(self, now: float, sent_at: float | None = None) -> Popped:
        """This tick's action, chosen by `now` (the tick's time), and what it cost: late (judged at
        `sent_at`, the loop's clock when the action goes out; default `now`), actions skipped because
        the loop overran (async), and the boundary jump when it is the first action of a new chunk."""
        if self._chunk is None:
            return Popped(None)
        horizon = min(self.n_action_steps, len(self._chunk.actions))
        skipped = 0
        if self.mode == "async":
            due = self._index_at(now)
            if due > self._next:  # the loop overran a tick: skip to the action due now
                skipped = max(min(due, horizon) - self._next, 0)
                self._next = due
        self.skipped_actions += skipped
        if self._next >= horizon:
            return Popped(None, False, skipped)
        slot = self._t0 + self._next * self.period
        late = (now if sent_at is None else sent_at) - slot > 0.5 * self.period
        self.late_actions += late
        action = self._chunk.actions[self._next]
        jump = None
        if self._fresh and self._last_action is not None:
            jump = np.abs(np.asarray(action, np.float64) - self._last_action)
        self._fresh = False
        self._last_action = np.asarray(action, np.float64).copy()
        self._next += 1
        return Popped(action, bool(late), skipped, jump)

    @staticmethod
    def jump_summary(jump: np.ndarray) -> dict[str, float]:
        """A boundary jump as the figures telemetry keeps: the largest arm-joint change and each base
        channel's."""
        return {
            "arm_deg": float(np.max(jump[:N_ARM])),
            "x_mps": float(jump[N_ARM]),
            "y_mps": float(jump[N_ARM + 1]),
            "theta_dps": float(jump[N_ARM + 2]),
        }

    def remaining(self, now: float | None = None) -> int:
        if self._chunk is None:
            return 0
        horizon = min(self.n_action_steps, len(self._chunk.actions))
        nxt = self._next
        if self.mode == "async" and now is not None:
            nxt = max(nxt, self._index_at(now))
        return max(horizon - nxt, 0)

    def wants_chunk(self, now: float) -> bool:
        """Should the next inference start now (the caller checks that none is in flight)?"""
        left = self.remaining(now)
        if self.mode == "sync" or self._chunk is None:
            return left == 0
        expected = math.ceil(self.latency_ticks_ema or 0.0)
        return left <= expected + self.margin_ticks
