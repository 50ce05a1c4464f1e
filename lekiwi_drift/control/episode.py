"""What one control-loop episode reports: `TickStatus` while it runs, `EpisodeResult` when it ends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

OUTCOMES = ("success", "timeout", "stopped", "estop", "error", "stale")


@dataclass
class TickStatus:
    elapsed_s: float
    hz: float
    obs_age_ms: float
    last_infer_ms: float
    stall_ticks: int
    late_actions: int
    queue_len: int
    auto_success: bool | None
    images: dict[str, np.ndarray] | None
    chunks: int = 0
    last_latency_ms: float = float("nan")  # the observation's time to the chunk being ready (what the robot waits)
    line: str = ""  # the same figures as one human-readable line
    skipped_actions: int = 0
    overruns: int = 0


@dataclass
class EpisodeResult:
    outcome: str  # one of OUTCOMES
    duration_s: float
    auto_success: bool | None  # the sim's `_success` at the end (None: the host reports none)
    error: str | None
    telemetry: dict[str, Any] = field(default_factory=dict)
    episode: int = 0
    interrupted: bool = False  # Ctrl-C: the caller should not start another episode
