"""Sample-quality metrics for `bench toy`, computed against exact draws from the true distribution.

All metrics compare, per held-out context, N generated chunks with N fresh true chunks:
- energy distance (U-statistic form, so two samples of one distribution score ~0 and it can be
  slightly negative) per action dimension, where each sample is that dimension's length-T trajectory
  in normalised units (divided by the training std, so channels in degrees, 0-100 and m/s weigh the
  same), and over the whole normalised chunk ("joint");
- mode weights: |fraction of generated chunks that pass left - true P(left)|;
- mode consistency: fraction of generated chunks whose y.vel and theta.vel agree on the pass side
  (1.0 for true data; per-dimension losses do not force channels to agree);
- gripper switch time: 1-D Wasserstein distance (steps) between generated and true switch times,
  plus the fraction of gripper values within 10 of open/closed (true data: 1.0).
"""

from __future__ import annotations

import torch

from lekiwi_drift.bench.toy_data import (
    ARM,
    BASE,
    GRIPPER,
    GRIPPER_CLOSED,
    GRIPPER_OPEN,
    LEFT,
    chunk_modes,
    left_probability,
    switch_steps,
)


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Energy distance between sample sets x [..., N, S] and y [..., M, S] (batched over leading dims).

    2 E||X-Y|| - E||X-X'|| - E||Y-Y'||, the within-set terms averaged over distinct pairs only.
    """
    n, m = x.shape[-2], y.shape[-2]
    xy = torch.cdist(x, y).mean((-1, -2))
    xx = torch.cdist(x, x).sum((-1, -2)) / (n * (n - 1))
    yy = torch.cdist(y, y).sum((-1, -2)) / (m * (m - 1))
    return 2 * xy - xx - yy


def wasserstein_1d(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """W1 between equal-size 1-D samples x [..., N], y [..., N]: mean |sorted x - sorted y|."""
    return (x.float().sort(-1).values - y.float().sort(-1).values).abs().mean(-1)


def sample_metrics(gen: torch.Tensor, true: torch.Tensor, contexts: torch.Tensor, std: torch.Tensor) -> dict:
    """gen, true: [E, N, T, 9] chunks in physical units for E contexts [E, 3]; std [9] training std.

    Returns scalar metrics (floats), each averaged over the E contexts, plus per-dimension ED.
    """
    e, n, t, d = gen.shape
    gz, tz = gen / std, true / std
    # Per-dimension: [E, D, N, T] trajectories.
    ed_dim = energy_distance(gz.permute(0, 3, 1, 2), tz.permute(0, 3, 1, 2)).mean(0)  # [D]
    ed_joint = energy_distance(gz.reshape(e, n, t * d), tz.reshape(e, n, t * d)).mean()

    y_mode, th_mode = chunk_modes(gen.reshape(e * n, t, d))
    frac_left = (y_mode == LEFT).float().view(e, n).mean(1)
    mode_err = (frac_left - left_probability(contexts)).abs().mean()
    consistency = (y_mode == th_mode).float().mean()

    sw_gen = switch_steps(gen.reshape(e * n, t, d)).view(e, n)
    sw_true = switch_steps(true.reshape(e * n, t, d)).view(e, n)
    grip = gen[..., GRIPPER]
    crisp = ((grip - GRIPPER_OPEN).abs() < 10) | ((grip - GRIPPER_CLOSED).abs() < 10)
    return {
        "ed_dim_mean": ed_dim.mean().item(),
        "ed_arm": ed_dim[list(ARM)].mean().item(),
        "ed_gripper": ed_dim[GRIPPER].item(),
        "ed_base": ed_dim[list(BASE)].mean().item(),
        "ed_joint": ed_joint.item(),
        "ed_per_dim": ed_dim.tolist(),
        "mode_weight_err": mode_err.item(),
        "mode_consistency": consistency.item(),
        "switch_w1_steps": wasserstein_1d(sw_gen, sw_true).mean().item(),
        "gripper_crisp": crisp.float().mean().item(),
    }
