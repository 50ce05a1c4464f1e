"""The drift loss (Deng et al. 2026, grouped as in the Drift-VLA paper), as specified in
docs/design.md#the-drift-loss.

Vocabulary. A *matching problem* is one observation's G live samples g_1..g_G in R^S and its
demonstration a in R^S. A *unit* is one (group, b) pair: one matching problem. A *group* is the set of
matching problems that share statistics; here that is all B observations of the batch under one
grouping key, so statistics are pooled over the batch inside a group:

- "action_dim": U = D groups (one per real action dim), each with B problems whose samples are that
  dim's length-T trajectory (S = T). Each channel gets its own scale s, shared over the batch.
- "chunk":      U = 1 group of B problems, samples are flattened chunks (S = T*D).
- "timestep":   U = T groups (one per chunk step), samples are that step's D-vector (S = D).

Per group (under no-grad, fp32 or fp64, autocast disabled):
  y = [g_1..g_G, a]; d_ij = ||g_i - y_j|| (G x (G+1), self-pairs included, so they contribute zeros);
  s_bar = mean of all d_ij of every valid unit in the group; s = max(s_bar/sqrt(S), 1e-3);
  d_hat = d / max(s_bar, 1e-3), d_hat_ii += 100;
  per temperature tau: A = sqrt(max(softmax_j(-d_hat/tau) * softmax_i(-d_hat/tau), 1e-6)),
  W+ = A+ * rowsum(A-), W- = -A- * rowsum(A+), F_i = sum_j W_ij (y_j - g_i) / s;
  each temperature's F is scaled to unit RMS over the group (RMS over every coordinate of every sample
  of every valid unit); V = sum over temperatures. goal = g/s + V.
Loss = mean over valid units of mean_i ||g_i/s - goal_i||^2 / S. Dividing by S (a mean over
coordinates) keeps the three groupings on one scale, so one learning rate serves the ablation; the
gradient on each sample is -2 V_i / (s * S * G * n_units), i.e. along +V_i.

Padding: padded timesteps are zeroed in samples and demonstration (they cancel in every distance, and
torch.where gives them an exactly zero gradient). S stays the nominal size (zeros are coordinates like
any other). A unit whose every coordinate is padded (a padded step under "timestep", or an all-padded
chunk) is excluded from s_bar, from the RMS and from the loss; a group with no valid unit gets s = 1e-3
and contributes nothing.

Everything is batched as [U, B, n_temps, G, ...] tensors: no Python loop over groups, batch or
temperatures. Two exact rewrites keep it cheap: distances come from the Gram matrix of y centred per
problem (||y_i - y_j||^2 = G_ii + G_jj - 2 G_ij; centring makes the rounding error scale with the
set's own spread), and since every row of W sums to zero (W+ balances W-), F = W y / s, whose energy
sum_i ||F_i||^2 = tr(W Gram W^T) / s^2 is taken in the (G+1)-dimensional candidate space; only the
final V is formed in sample space.
"""

from __future__ import annotations

import math

import torch

# The one definition of the groupings and default temperatures: the policy config and the benches
# take them from here, so the maths and what a config may ask for cannot drift apart.
GROUPINGS = ("action_dim", "chunk", "timestep")
DEFAULT_TEMPERATURES = (0.02, 0.05, 0.2)

_SCALE_FLOOR = 1e-3  # floor on s_bar and s (docs/design.md#the-drift-loss, step 2)
_SELF_PENALTY = 100.0  # added to d_hat_ii so a sample never attracts or repels itself
_AFFINITY_FLOOR = 1e-6  # floor under the product of the two softmaxes, before the sqrt
_RMS_FLOOR = 1e-12  # only guards 0/0 when every force in a group is exactly zero
_EXP_FLOOR = -80.0  # floor on shifted logits; exp(-80) ~ 1.8e-35 is still a normal fp32 number


def to_units(
    gen: torch.Tensor, demo: torch.Tensor, is_pad: torch.Tensor | None, grouping: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Zero padded timesteps and lay [B,G,T,D] / [B,T,D] out as units.

    Returns g [U,B,G,S], a [U,B,S] (same dtype as the inputs, still differentiable) and valid [U,B] bool.
    """
    if gen.dim() != 4 or demo.dim() != 3:
        raise ValueError(f"gen must be [B,G,T,D] and demo [B,T,D], got {tuple(gen.shape)}, {tuple(demo.shape)}")
    b, n_gen, t, d = gen.shape
    if demo.shape != (b, t, d):
        raise ValueError(f"demo shape {tuple(demo.shape)} does not match gen {tuple(gen.shape)}")
    if is_pad is None:
        keep = torch.ones(b, t, dtype=torch.bool, device=gen.device)
    else:
        if is_pad.shape != (b, t):
            raise ValueError(f"is_pad must be [B,T]={b, t}, got {tuple(is_pad.shape)}")
        keep = ~is_pad.to(device=gen.device, dtype=torch.bool)
        # where (not a multiply) so the gradient into padded entries is exactly zero, even for inf/nan.
        gen = torch.where(keep[:, None, :, None], gen, gen.new_zeros(()))
        demo = torch.where(keep[:, :, None], demo, demo.new_zeros(()))
    if grouping == "action_dim":
        g = gen.permute(3, 0, 1, 2)  # [D,B,G,T]
        a = demo.permute(2, 0, 1)  # [D,B,T]
        valid = keep.any(-1).expand(d, b)
    elif grouping == "chunk":
        g = gen.reshape(1, b, n_gen, t * d)
        a = demo.reshape(1, b, t * d)
        valid = keep.any(-1)[None]
    elif grouping == "timestep":
        g = gen.permute(2, 0, 1, 3)  # [T,B,G,D]
        a = demo.permute(1, 0, 2)  # [T,B,D]
        valid = keep.t()
    else:
        raise ValueError(f"unknown grouping {grouping!r}; expected one of {GROUPINGS}")
    return g, a, valid


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # fp64 stays fp64 (tests, references); everything narrower is lifted to fp32 (the paper's guard).
    return torch.float64 if dtype == torch.float64 else torch.float32


def drift_field(
    g: torch.Tensor,
    a: torch.Tensor,
    valid: torch.Tensor,
    temperatures: tuple[float, ...] = DEFAULT_TEMPERATURES,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Drift V [U,B,G,S], scale s [U], raw per-temperature force RMS [n_temps,U] and the squared
    distances [U,B,G,G+1] (rows: samples; columns: siblings then the demonstration) for units.

    Inputs as from `to_units`. Runs under no-grad with autocast off, in fp32 (fp64 stays fp64).
    """
    with torch.no_grad(), torch.autocast(device_type=g.device.type, enabled=False):
        dt = _compute_dtype(g.dtype)
        n_units, _, n_gen, size = g.shape
        w_valid = valid.to(dt)  # [U,B]
        n_valid = w_valid.sum(-1)  # [U]

        # y = [g_1..g_G, a], centred per problem: distances and forces are translation invariant, and
        # centring keeps the Gram expansion below accurate (its error scales with the set's own spread,
        # not with its distance from the origin).
        y = torch.cat([g.detach(), a.detach().unsqueeze(2)], dim=2).to(dt)  # [U,B,G+1,S]
        y = y - y.mean(2, keepdim=True)
        gram = torch.matmul(y, y.transpose(-1, -2))  # [U,B,G+1,G+1]
        sq = gram.diagonal(dim1=-2, dim2=-1)  # [U,B,G+1]
        # ||y_i - y_j||^2 for the G sample rows; the self-pairs come out exactly zero.
        dsq = (sq[..., :n_gen, None] + sq[..., None, :] - 2 * gram[..., :n_gen, :]).clamp_min_(0)
        dist = dsq.sqrt()  # [U,B,G,G+1]

        per_unit = dist.sum((-1, -2))  # [U,B]
        s_bar = (per_unit * w_valid).sum(-1) / (n_valid * (n_gen * (n_gen + 1))).clamp_min(1.0)
        s_bar = s_bar.clamp_min(_SCALE_FLOOR)  # [U]
        s = (s_bar / math.sqrt(size)).clamp_min(_SCALE_FLOOR)  # [U]

        self_pair = torch.eye(n_gen, n_gen + 1, dtype=dt, device=g.device) * _SELF_PENALTY
        d_hat = (dist / s_bar[:, None, None, None] + self_pair).unsqueeze(2)  # [U,B,1,G,G+1]

        # Temperatures ride in dim 2: [U,B,n_t,G,G+1]. Both softmaxes are written out: torch.softmax
        # over these tiny (and, for the column one, strided) axes is several times slower. The shifts
        # (row / column minima of d_hat) are the usual max-logit shifts and do not depend on tau.
        # Shifted logits are floored at _EXP_FLOOR: below it exp() turns subnormal (a slow path on
        # x86), and entries that small change neither a softmax sum nor, after the 1e-6 floor on the
        # product, any affinity, in fp32 or fp64.
        inv_tau = 1.0 / torch.tensor(temperatures, dtype=dt, device=g.device).view(1, 1, -1, 1, 1)
        row = ((d_hat.amin(-1, keepdim=True) - d_hat) * inv_tau).clamp_min_(_EXP_FLOOR).exp_()
        # Sums over the last (G+1) axis as one matrix-vector product: a reduction over such a short
        # axis is several times slower on CPU.
        ones = torch.ones(n_gen + 1, 1, dtype=dt, device=g.device)
        row = row.div_(torch.matmul(row, ones))
        col = ((d_hat.amin(-2, keepdim=True) - d_hat) * inv_tau).clamp_min_(_EXP_FLOOR).exp_()
        col = col.div_(col.sum(-2, keepdim=True))
        aff = row.mul_(col).clamp_min_(_AFFINITY_FLOOR).sqrt_()  # A, [U,B,n_t,G,G+1]
        # W- = -A- * rowsum(A+) and W+ = A+ * rowsum(A-), built in place in A's buffer. Each row of W
        # sums to zero, so F_i = sum_j W_ij (y_j - g_i) / s = sum_j W_ij y_j / s.
        a_pos = aff[..., n_gen:].clone()  # [..,G,1]
        ones[n_gen] = 0.0  # now sums the sibling columns only
        w_pos = torch.matmul(aff, ones).mul_(a_pos)
        w = aff.mul_(a_pos.neg_())
        w[..., n_gen:] = w_pos

        # Force energy in candidate space: ||F_i||^2 = (W Gram W^T)_ii / s^2, so the per-temperature
        # RMS needs no [U,B,n_t,G,S] force tensor; only the final drift is formed in sample space.
        n_temps = len(temperatures)
        wg = torch.matmul(w.view(n_units, -1, n_temps * n_gen, n_gen + 1), gram).view_as(w)
        f_sq = (wg.mul_(w)).sum((-1, -2)).clamp_min_(0) / s.square()[:, None, None]  # [U,B,n_t]
        rms = ((f_sq * w_valid[..., None]).sum(1) / (n_valid * (n_gen * size)).clamp_min(1.0)[:, None]).sqrt()
        w = w.mul_(rms.clamp_min(_RMS_FLOOR).reciprocal()[:, None, :, None, None]).sum(2)  # [U,B,G,G+1]
        drift = torch.matmul(w, y).div_(s[:, None, None, None])  # [U,B,G,S]
        rms = rms.t()  # [n_t,U]
    return drift, s, rms, dsq


def drift_loss(
    gen: torch.Tensor,
    demo: torch.Tensor,
    is_pad: torch.Tensor | None = None,
    grouping: str = "action_dim",
    temperatures: tuple[float, ...] = DEFAULT_TEMPERATURES,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Drift loss for live samples gen [B,G,T,D] against demonstrations demo [B,T,D].

    gen and demo hold the real action dims only (slice padding dims off before calling). is_pad [B,T]
    is True at padded timesteps. Returns (loss, info): the scalar loss (mean over valid (group, b)
    units; gradient flows into gen only) and detached diagnostics, all tensors (no host sync):
    scale [U] (s per group), force_rms [n_temps] (raw force RMS per temperature, mean over groups),
    drift_energy (mean ||V||^2/S, equal to the loss value), centroid_mse (mean over valid units of
    ||mean_i g_i - a||^2 / S), sample_var (mean per-coordinate variance over the G samples).
    See the module docstring for the exact definition and the scope of the statistics.
    """
    g, a, valid = to_units(gen, demo, is_pad, grouping)
    drift, s, rms, dsq = drift_field(g, a, valid, temperatures)
    n_gen, size = g.shape[2], g.shape[3]
    with torch.autocast(device_type=gen.device.type, enabled=False):
        dt = drift.dtype
        s_b = s[:, None, None, None]
        goal = g.detach().to(dt) / s_b + drift
        # g.to(dt) is a differentiable cast: fp32 arithmetic, gradient back in gen's own dtype.
        per_unit = (g.to(dt) / s_b - goal).square().mean((-1, -2))  # [U,B]
        w_valid = valid.to(dt)
        n_valid = w_valid.sum().clamp_min(1.0)
        loss = (per_unit * w_valid).sum() / n_valid

    with torch.no_grad():
        # Both diagnostics from the squared distances: sum_ij ||g_i - g_j||^2 = 2G sum_i ||g_i - mean||^2
        # and mean_i ||g_i - a||^2 = ||mean - a||^2 + mean_i ||g_i - mean||^2.
        spread_sq = dsq[..., :n_gen].sum((-1, -2)) / (2 * n_gen * n_gen)  # [U,B]: mean_i ||g_i - mean||^2
        centroid = (dsq[..., n_gen].mean(-1) - spread_sq).clamp_min(0) / size
        has_valid = valid.any(-1).to(dt)  # [U]
        info = {
            "scale": s,
            "force_rms": (rms * has_valid).sum(-1) / has_valid.sum().clamp_min(1.0),
            "drift_energy": loss.detach(),
            "centroid_mse": (centroid * w_valid).sum() / n_valid,
            "sample_var": (spread_sq / size * w_valid).sum() / n_valid,
        }
    return loss, info
