"""Synthetic LeKiwi-like action chunks with an exact ground-truth sampler (for `bench toy`).

A 3-D context (item lateral position, item distance, obstacle lateral offset) maps to a distribution
over 50x9 chunks with the real channels' units and heterogeneity:

- five arm joints in degrees, each a smooth reach from a start pose to a context-dependent target
  (spans from ~5 deg for the wrist roll to ~60 deg for the shoulder lift), with per-sample jitter;
- the gripper, strictly bimodal in value (100 = open, 0 = closed) with a random switch time (the grasp);
- base velocities: x.vel in m/s (unimodal), y.vel in m/s and theta.vel in deg/s, which carry the
  genuine multimodality: the base passes LEFT (y.vel > 0 bump, theta.vel turning right then back) or
  RIGHT (both signs flipped) of an obstacle, with P(left) = sigmoid(3 * obstacle), so contexts near
  obstacle = 0 are close to 50/50 and the extremes are about 95/5.

Because the generator is written down, held-out samples are exact: metrics compare a model's samples
with fresh draws from the true conditional distribution, never with a finite held-out set alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lekiwi_drift.robots.features import STATE_KEYS

CHUNK = 50
CHANNELS = STATE_KEYS  # the LeKiwi action, in its order
UNITS = ("deg", "deg", "deg", "deg", "deg", "0-100", "m/s", "m/s", "deg/s")
GRIPPER, X_VEL, Y_VEL, THETA_VEL = 5, 6, 7, 8
ARM = (0, 1, 2, 3, 4)
BASE = (6, 7, 8)
CONTEXT_DIM = 3
GRIPPER_OPEN, GRIPPER_CLOSED = 100.0, 0.0
# Mode labels: the base passes left (+1) or right (-1) of the obstacle.
LEFT, RIGHT = 1, -1


@dataclass(frozen=True)
class ToyChunks:
    """A batch of true samples: chunks [N,T,9], their mode (+1 left / -1 right) and switch step."""

    chunks: torch.Tensor
    mode: torch.Tensor
    switch: torch.Tensor


def sample_contexts(n: int, gen: torch.Generator) -> torch.Tensor:
    """Contexts [n, 3]: item_x in [-1,1], item_dist in [0,1], obstacle in [-1,1]."""
    u = torch.rand(n, CONTEXT_DIM, generator=gen)
    return torch.stack([2 * u[:, 0] - 1, u[:, 1], 2 * u[:, 2] - 1], dim=1)


def left_probability(context: torch.Tensor) -> torch.Tensor:
    """P(pass left | context) [N]: the true mode weights."""
    return torch.sigmoid(3.0 * context[:, 2])


def _smoothstep(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0.0, 1.0)
    return x * x * (3 - 2 * x)


def sample_chunks(context: torch.Tensor, gen: torch.Generator) -> ToyChunks:
    """One true chunk per context row: context [N,3] -> chunks [N,50,9] in physical units."""
    n = context.shape[0]
    item_x, dist, _ = context.unbind(1)
    tau = (torch.arange(CHUNK, dtype=torch.float32) / CHUNK)[None, :]  # [1,T], chunk time in [0,1)

    def noise(*shape):
        return torch.randn(*shape, generator=gen)

    out = torch.empty(n, CHUNK, len(CHANNELS))
    # Arm: reach from a start pose to a context-dependent target, at a per-sample speed.
    reach = (0.45 + 0.25 * torch.rand(n, generator=gen))[:, None]  # fraction of the chunk to arrive
    s = _smoothstep(tau / reach)  # [N,T]
    start = torch.tensor([0.0, -90.0, 90.0, 60.0, 0.0])
    target = torch.stack(
        [
            40.0 * item_x,
            -30.0 + 20.0 * dist,
            40.0 - 30.0 * dist,
            20.0 + 10.0 * item_x,
            torch.zeros(n),
        ],
        dim=1,
    )
    jitter = noise(n, 5) * torch.tensor([2.0, 2.0, 2.0, 2.0, 2.5])  # per-sample target jitter, deg
    target = target + jitter
    out[..., :5] = start[None, None, :] + (target - start)[:, None, :] * s[..., None]

    # Gripper: open until the grasp, then closed. Switch step depends on distance, +-3 steps of noise.
    switch = (20.0 + 15.0 * dist + 3.0 * noise(n)).round().clamp(5, CHUNK - 5).long()
    steps = torch.arange(CHUNK)[None, :]
    out[..., GRIPPER] = torch.where(steps < switch[:, None], GRIPPER_OPEN, GRIPPER_CLOSED)

    # Base: forward speed ramps up; the obstacle is passed left or right.
    vx = (0.15 + 0.10 * dist) * (1 + 0.1 * noise(n))
    out[..., X_VEL] = vx[:, None] * (1 - torch.exp(-5 * tau))
    mode = torch.where(torch.rand(n, generator=gen) < left_probability(context), LEFT, RIGHT)
    amp_y = (0.12 + 0.03 * dist) * (1 + 0.1 * noise(n))
    amp_th = 25.0 * (1 + 0.1 * noise(n))
    out[..., Y_VEL] = (mode * amp_y)[:, None] * torch.sin(math.pi * tau)
    out[..., THETA_VEL] = (-mode * amp_th)[:, None] * torch.sin(2 * math.pi * tau)
    return ToyChunks(out, mode, switch)


def chunk_modes(chunks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Classify chunks [N,T,9] (physical units) by the pass side, read from y.vel and from theta.vel.

    Returns (mode from y.vel, mode from theta.vel), each [N] in {+1, -1}. On true samples both agree
    with the drawn mode; a generator that mixes modes across channels makes them disagree.
    """
    tau = torch.arange(CHUNK, dtype=chunks.dtype, device=chunks.device) / CHUNK
    y_proj = (chunks[..., Y_VEL] * torch.sin(math.pi * tau)).sum(-1)
    th_proj = -(chunks[..., THETA_VEL] * torch.sin(2 * math.pi * tau)).sum(-1)
    sign = lambda x: torch.where(x >= 0, LEFT, RIGHT)  # noqa: E731
    return sign(y_proj), sign(th_proj)


def switch_steps(chunks: torch.Tensor) -> torch.Tensor:
    """Gripper switch step [N]: the first step whose gripper value is below the midpoint (T if none)."""
    closed = chunks[..., GRIPPER] < 0.5 * (GRIPPER_OPEN + GRIPPER_CLOSED)
    first = torch.where(closed, torch.arange(CHUNK, device=chunks.device), CHUNK)
    return first.min(-1).values


def normalisation_stats(chunks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and std [9] over samples and timesteps (SmolVLA's MEAN_STD action norm)."""
    flat = chunks.reshape(-1, chunks.shape[-1])
    return flat.mean(0), flat.std(0).clamp_min(1e-6)
