"""How old an observation is when the robot's clock and ours disagree.

Our host stamps each observation header with its own wall clock at capture (`_stamp`). A robot Pi without
network time is often seconds to hours off the laptop, so `now - stamp` cannot be trusted: a Pi behind
makes every observation look old (the stale guard stops the robot for good), a Pi ahead makes them look
brand new (the stale guard is blind and latency compensation uses the wrong observation time).

The estimator. Our host also stamps `_sent`, its wall clock once the JPEGs are encoded. For each
observation, `lag = recv_time - sent` is the one-way delay d plus the clock offset (local - host). Over a
sliding window we keep the smallest lag, i.e. the message that queued least, and call
`offset_s = -min(lag)` the host clock's lead over ours. The age of an observation is then
`now - stamp + offset_s` = the true time since capture minus d_min, the smallest one-way delay seen in the
window. One-way stamps cannot separate d from the offset, so the age is underestimated by d_min: well
under a millisecond on loopback, a few ms on a LAN, against a 200 ms stale bound. Host work between capture
and send (camera read, JPEG encode: tens of ms on a Pi) still counts in full, since `_stamp` is taken
before it; a host without `_sent` gives only `_stamp`, and then that work is lost in d_min as well. The age
is also never below the receipt age (`now - recv_time`), which the true age can never be below either.

Why not an NTP-style request/reply: a stock LeRobot host has neither `_stamp` nor requests, our host would
need a new request kind, and NTP's own error is half the path asymmetry, the same order as d_min here.

The window holds the samples received in the last `window_s` seconds, but never fewer than the newest
`min_samples`. That gives:
- drift (crystal ppm) and a forward host clock step are followed at once (lag drops: new minimum);
- a backward step (host NTP pulls a fast Pi back) leaves the estimate too high for at most `window_s`
  (ages read too old: the safe direction, the stale guard holds the robot), then the old samples age out;
- after a silence (a paused host) the pre-pause samples stay until `min_samples` new ones arrived, so one
  late message delivered on resume cannot set the offset on its own;
- the limit of one-way stamps: extra delay that persists longer than the window is absorbed into the
  offset, and ages then read low by that extra delay.

Without a `_stamp` (stock host) there is nothing to estimate: the age is the receipt age, as always.
Receipt and `now` both use `time.time()` (what `Observation.recv_time` has always been); a step of the
laptop's own clock looks like a host step to the estimator and is handled the same way. All age maths
lives in `observation_age`.
"""

from __future__ import annotations

from collections import deque

WINDOW_S = 10.0  # how long a low lag is remembered: the recovery time after a backward host step
MIN_SAMPLES = 60  # ~2 s at 30 Hz: kept across a silence whatever their age


def observation_age(now: float, recv_time: float, stamp: float | None = None, offset_s: float = 0.0) -> float:
    """Seconds since capture: `now - stamp + offset_s` (offset_s = host clock minus local clock, as
    estimated), never below the receipt age; without a stamp, the receipt age."""
    received = now - recv_time
    if stamp is None:
        return max(0.0, received)
    return max(0.0, received, now - stamp + offset_s)


class HostClock:
    """Running estimate of (host clock - local clock) from (stamp, receipt time) pairs. One writer (the
    link's receive thread); `offset_s` is a plain float read, safe from other threads."""

    def __init__(self, window_s: float = WINDOW_S, min_samples: int = MIN_SAMPLES):
        if window_s <= 0 or min_samples < 1:
            raise ValueError("window_s must be > 0 and min_samples >= 1")
        self.window_s = window_s
        self.min_samples = min_samples
        # Monotonic queue of (sample index, recv_time, lag) with lags strictly increasing front to back:
        # the front is the window's minimum; a sample with a larger lag than a newer one can never be the
        # minimum again, so it is dropped on arrival of the newer one (O(1) amortised per update).
        self._cands: deque[tuple[int, float, float]] = deque()
        self._count = 0
        self.offset_s: float | None = None  # None until a stamped observation arrived

    def update(self, stamp: float, recv_time: float) -> float:
        """Add one observation; returns the current offset estimate (host minus local, seconds)."""
        lag = recv_time - stamp
        index = self._count
        self._count += 1
        while self._cands and self._cands[-1][2] >= lag:
            self._cands.pop()
        self._cands.append((index, recv_time, lag))
        # Out of the window: far from the newest receipt time (either way: the local clock may step back
        # too) and at least min_samples newer samples exist. The newest sample itself always stays.
        while len(self._cands) > 1:
            first, t, _ = self._cands[0]
            if abs(recv_time - t) > self.window_s and index - first >= self.min_samples:
                self._cands.popleft()
            else:
                break
        self.offset_s = -self._cands[0][2]
        return self.offset_s
