"""What `lekiwi-drift host` needs from a robot. The real LeKiwi, the fake and the sim all provide it.

The shape follows LeRobot's `Robot` (connect / get_observation / send_action / disconnect) plus the
two things LeRobot's LeKiwi host calls (`stop_base`, `cameras`), so the stock host loop can serve our
robots too, and a few optional hooks our host uses when present.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class HostedRobot(Protocol):
    # Camera name -> anything; only the keys (in wire order) are used, as LeRobot's host does.
    cameras: dict[str, Any]

    def connect(self) -> None: ...

    def get_observation(self) -> dict[str, float | np.ndarray]:
        """The 9 state floats (features.STATE_KEYS) and one HxWx3 uint8 RGB frame per camera.
        Raises on a camera or bus read error; the host counts it and skips that observation."""

    def send_action(self, action: dict[str, float]) -> dict[str, float]:
        """Apply a complete, validated 9-key action; return what was actually sent."""

    def stop_base(self) -> None: ...

    def disconnect(self) -> None:
        """Stop the base, then release the arm as configured."""


class HostHooks:
    """Optional extras a robot may define (the host uses `getattr` with these defaults).

    - `lockstep: bool` — when True the host advances the robot one control period per received command
      and publishes exactly one observation per command (deterministic sim); else it runs in real time.
    - `header_extras() -> dict` — extra `_`-prefixed header keys (e.g. the sim's `_success`); stock clients
      ignore them.
    - `handle_request(request: dict) -> dict` — a host request carried in a command's `_request` key (e.g.
      `{"op": "reset", "item": "salt_bottle", "seed": 3}`); the reply is published in the next header as
      `_reply`.
    - `clock() -> float` — the robot's own clock in seconds (the fake's, or sim time); defaults to
      time.monotonic. The watchdog is measured on it.
    - `wall_clock() -> float` — the robot computer's wall clock, stamped into each header as `_stamp`;
      defaults to time.time. It need not agree with the client's clock: the client estimates the offset.
    """
