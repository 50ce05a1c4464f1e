"""Success detector for the shopping task: the requested item is in the basket, let go, and at rest.

Checked once per control period on sim time. The item counts as "in the basket" when its centre lies
over the basket's inner floor and below the rim (plus a little, so a bottle standing upright in the
short basket counts); "released" when neither finger touches it; "at rest" when it moves slower than
2 cm/s and turns slower than 0.5 rad/s. All three must hold without a break for HOLD_S seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from lekiwi_drift.sim.model import GEOM
from lekiwi_drift.sim.world import SimWorld

HOLD_S = 0.5
MAX_SPEED = 0.02  # m/s
MAX_SPIN = 0.5  # rad/s
_ABOVE_RIM = 0.03  # an item's centre may stand this far above the rim and still count as inside


@dataclass
class TaskStatus:
    in_basket: bool
    released: bool
    at_rest: bool
    success: bool


def item_in_basket(world: SimWorld, item: str) -> bool:
    p = world.item_pos(item)
    b = world.basket_pos()
    inner = GEOM.basket_half_inner
    floor_top = b[2] + GEOM.basket_floor
    return (
        abs(p[0] - b[0]) <= inner
        and abs(p[1] - b[1]) <= inner
        and floor_top <= p[2] <= floor_top + GEOM.basket_height + _ABOVE_RIM
    )


class SuccessDetector:
    def __init__(self, world: SimWorld):
        self.world = world
        self.reset()

    def reset(self) -> None:
        self._since: float | None = None  # sim time the conditions started to hold
        self.success = False
        self.first_success_time: float | None = None
        self.status = TaskStatus(False, False, False, False)

    def update(self) -> bool:
        """Re-check the conditions at the current sim time; returns the success flag."""
        w = self.world
        item = w.item
        speed, spin = w.item_speed(item)
        inside = item_in_basket(w, item)
        released = not w.item_touches_fingers(item)
        at_rest = speed < MAX_SPEED and spin < MAX_SPIN
        now = w.time
        if inside and released and at_rest:
            if self._since is None:
                self._since = now
        else:
            self._since = None
        self.success = self._since is not None and now - self._since >= HOLD_S - 1e-9
        if self.success and self.first_success_time is None:
            self.first_success_time = now
        self.status = TaskStatus(inside, released, at_rest, self.success)
        return self.success
