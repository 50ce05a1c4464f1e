"""Seeded scene layouts: where the robot starts and where the basket and the three items stand.

The ranges keep every scene solvable: items sit near the shelf's front edge within the arm's reach
once the base has driven up; the basket and items are spread along the shelf with enough room between
them for open fingers; the robot starts a little back from the shelf, roughly facing it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lekiwi_drift.sim.config import ITEMS
from lekiwi_drift.sim.model import GEOM, ITEM_SPECS

_SHELF_SPAN = 0.80  # usable length of the shelf (along y) for items and basket
_BASKET_HALF_FOOTPRINT = GEOM.basket_half_inner + GEOM.basket_wall + 0.02


@dataclass(frozen=True)
class Pose2D:
    x: float
    y: float
    yaw: float  # radians


@dataclass(frozen=True)
class SceneLayout:
    seed: int
    robot: Pose2D
    basket: Pose2D
    items: dict[str, Pose2D]


def sample_layout(seed: int) -> SceneLayout:
    """A random but solvable layout; the same seed always gives the same layout."""
    rng = np.random.default_rng(seed)
    robot = Pose2D(
        x=float(rng.uniform(-0.25, -0.10)),
        y=float(rng.uniform(-0.15, 0.15)),
        yaw=float(np.radians(rng.uniform(-25.0, 25.0))),
    )
    # Order the basket and the items along the shelf at random, then share out the spare length
    # at random between the gaps, so nothing overlaps and every object is reachable from the front.
    names = ["basket", *ITEMS]
    order = [names[i] for i in rng.permutation(len(names))]
    half = {n: (_BASKET_HALF_FOOTPRINT if n == "basket" else ITEM_SPECS[n].half_footprint) for n in names}
    slack = _SHELF_SPAN - 2.0 * sum(half.values())
    gaps = rng.dirichlet(np.ones(len(names) + 1)) * slack
    y = -_SHELF_SPAN / 2.0
    centers = {}
    for i, name in enumerate(order):
        y += gaps[i] + half[name]
        centers[name] = y
        y += half[name]
    basket = Pose2D(x=GEOM.shelf_front + 0.09, y=float(centers["basket"]), yaw=0.0)
    items = {}
    for name in ITEMS:
        yaw = float(rng.uniform(-np.pi / 2, np.pi / 2)) if name == "chocolate_bar" else float(rng.uniform(-np.pi, np.pi))
        items[name] = Pose2D(x=float(rng.uniform(GEOM.shelf_front + 0.045, GEOM.shelf_front + 0.11)),
                             y=float(centers[name]), yaw=yaw)
    return SceneLayout(seed=seed, robot=robot, basket=basket, items=items)


def yaw_quat(yaw: float) -> np.ndarray:
    """MuJoCo (w, x, y, z) quaternion for a rotation about z."""
    return np.array([np.cos(yaw / 2.0), 0.0, 0.0, np.sin(yaw / 2.0)])


def quat_yaw(q: np.ndarray) -> float:
    """Heading (rotation about z) of a MuJoCo (w, x, y, z) quaternion."""
    w, x, y, z = q
    return float(np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z)))
