"""Seeded scene layouts: where the robot starts and where the basket and the three items stand.

The ranges keep every scene solvable: items sit near the shelf's front edge within the arm's reach
once the base has driven up; the basket and items are spread along the shelf with enough room between
them for open fingers; the robot starts a little back from the shelf, roughly facing it.

Two ways to pick a scene (`scene_layout(seed, scene)`):
- `scene=None`: every seed is a different layout (`sample_layout(seed)`): generalisation across scenes.
- `scene=S`: the paper's protocol, "one initial scene, reset noise": the fixed layout `sample_layout(S)`
  plus a small per-trial jitter drawn from `seed`, like a person re-placing things between trials
  (`JITTER`: each item moved by up to 1.5 cm along and across the shelf and turned freely about its axis,
  the robot's start moved by up to 3 cm and turned by up to 5 degrees). The basket stays where it is.
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
    seed: int  # the layout seed (scene=None) or the jitter seed (scene=S)
    robot: Pose2D
    basket: Pose2D
    items: dict[str, Pose2D]
    scene: int | None = None  # the fixed layout this one jitters, None: `seed` drew the whole layout


@dataclass(frozen=True)
class Jitter:
    """Per-trial reset noise around a fixed scene (uniform, +- each value)."""

    item_xy: float = 0.015  # m, each of x and y
    item_yaw_deg: float = 180.0  # cylinders look the same from every side; the bar turns by this much
    robot_xy: float = 0.03  # m, each of x and y
    robot_yaw_deg: float = 5.0


JITTER = Jitter()


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
        yaw = (
            float(rng.uniform(-np.pi / 2, np.pi / 2)) if name == "chocolate_bar" else float(rng.uniform(-np.pi, np.pi))
        )
        items[name] = Pose2D(
            x=float(rng.uniform(GEOM.shelf_front + 0.045, GEOM.shelf_front + 0.11)), y=float(centers[name]), yaw=yaw
        )
    return SceneLayout(seed=seed, robot=robot, basket=basket, items=items)


def jitter_layout(base: SceneLayout, seed: int, jitter: Jitter = JITTER) -> SceneLayout:
    """`base` moved by the reset noise drawn from `seed`; `scene` records the fixed layout's seed."""
    rng = np.random.default_rng([int(seed), 0x5EED])
    u = lambda r: float(rng.uniform(-r, r))  # noqa: E731
    robot = Pose2D(
        x=base.robot.x + u(jitter.robot_xy),
        y=base.robot.y + u(jitter.robot_xy),
        yaw=base.robot.yaw + float(np.radians(u(jitter.robot_yaw_deg))),
    )
    items = {}
    for name, pose in base.items.items():
        yaw_range = np.radians(min(jitter.item_yaw_deg, 20.0) if name == "chocolate_bar" else jitter.item_yaw_deg)
        items[name] = Pose2D(
            x=pose.x + u(jitter.item_xy),
            y=pose.y + u(jitter.item_xy),
            yaw=pose.yaw + float(rng.uniform(-yaw_range, yaw_range)),
        )
    return SceneLayout(seed=int(seed), robot=robot, basket=base.basket, items=items, scene=base.seed)


def scene_layout(seed: int, scene: int | None = None) -> SceneLayout:
    """The layout for a sim reset: `sample_layout(seed)`, or fixed scene `scene` jittered by `seed`."""
    if scene is None:
        return sample_layout(int(seed))
    return jitter_layout(sample_layout(int(scene)), int(seed))


def parse_scene(text: str) -> int | None:
    """The command line's `--scene N|random`: a fixed layout seed, or None (each seed its own layout)."""
    if text.strip().lower() in ("random", "none"):
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"--scene {text!r}: give a layout seed (e.g. 0) or 'random'") from None


SCENE_HELP = (
    "the fixed layout every episode starts from, jittered per episode by its seed (default 0, the "
    "salt-bottle protocol's scene); 'random': each seed draws a whole new layout"
)


def yaw_quat(yaw: float) -> np.ndarray:
    """MuJoCo (w, x, y, z) quaternion for a rotation about z."""
    return np.array([np.cos(yaw / 2.0), 0.0, 0.0, np.sin(yaw / 2.0)])


def quat_yaw(q: np.ndarray) -> float:
    """Heading (rotation about z) of a MuJoCo (w, x, y, z) quaternion."""
    w, x, y, z = q
    return float(np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z)))
