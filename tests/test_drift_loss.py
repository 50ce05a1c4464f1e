"""The drift loss against a plain loop (docs/design.md#the-drift-loss), plus its defining properties."""

from __future__ import annotations

import math

import pytest
import torch

from lekiwi_drift.policy.drift import drift_field, drift_loss, to_units

GROUPINGS = ("action_dim", "chunk", "timestep")
TEMPS = (0.02, 0.05, 0.2)


# ---------------------------------------------------------------------------------------------------
# Reference: docs/design.md#the-drift-loss, one matching problem and one sample at a time.


def _softmax(values: list[float]) -> list[float]:
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


def _reference_group(problems, temps):
    """problems: list of (g [G,S] live tensor, a [S] tensor). Returns the per-problem losses."""
    n_gen, size = problems[0][0].shape
    dists, ys = [], []
    with torch.no_grad():
        for g, a in problems:
            y = [g[i] for i in range(n_gen)] + [a]
            ys.append(y)
            dists.append(
                [[float(torch.linalg.vector_norm(g[i] - y[j])) for j in range(n_gen + 1)] for i in range(n_gen)]
            )
        s_bar = sum(sum(sum(row) for row in d) for d in dists) / (len(problems) * n_gen * (n_gen + 1))
        s = max(s_bar / math.sqrt(size), 1e-3)
        v_total = [torch.zeros(n_gen, size, dtype=torch.float64) for _ in problems]
        for tau in temps:
            forces = []
            for (g, _), d, y in zip(problems, dists, ys):
                d_hat = [
                    [d[i][j] / max(s_bar, 1e-3) + (100.0 if i == j else 0.0) for j in range(n_gen + 1)]
                    for i in range(n_gen)
                ]
                logits = [[-d_hat[i][j] / tau for j in range(n_gen + 1)] for i in range(n_gen)]
                rows = [_softmax(logits[i]) for i in range(n_gen)]
                cols = [_softmax([logits[i][j] for i in range(n_gen)]) for j in range(n_gen + 1)]
                aff = [[math.sqrt(max(rows[i][j] * cols[j][i], 1e-6)) for j in range(n_gen + 1)] for i in range(n_gen)]
                force = torch.zeros(n_gen, size, dtype=torch.float64)
                for i in range(n_gen):
                    a_pos = aff[i][n_gen]
                    sum_neg = sum(aff[i][:n_gen])
                    for j in range(n_gen + 1):
                        w_ij = a_pos * sum_neg if j == n_gen else -aff[i][j] * a_pos
                        force[i] += w_ij * (y[j] - g[i]) / s
                forces.append(force)
            rms = math.sqrt(sum(float((f**2).sum()) for f in forces) / (len(problems) * n_gen * size))
            for v, f in zip(v_total, forces):
                v += f / rms
    losses = []
    for (g, _), v in zip(problems, v_total):
        goal = (g.detach() / s + v).detach()
        losses.append(sum(((g[i] / s - goal[i]) ** 2).sum() / size for i in range(n_gen)) / n_gen)
    return losses


def reference_drift_loss(gen, demo, is_pad, grouping, temps=TEMPS):
    b_size, n_gen, horizon, dims = gen.shape
    keep = ~is_pad
    gen = torch.where(keep[:, None, :, None], gen, torch.zeros((), dtype=gen.dtype))
    demo = torch.where(keep[:, :, None], demo, torch.zeros((), dtype=demo.dtype))
    groups = []
    if grouping == "action_dim":
        for d in range(dims):
            groups.append([(gen[b, :, :, d], demo[b, :, d]) for b in range(b_size) if keep[b].any()])
    elif grouping == "chunk":
        groups.append([(gen[b].reshape(n_gen, -1), demo[b].reshape(-1)) for b in range(b_size) if keep[b].any()])
    else:
        for t in range(horizon):
            groups.append([(gen[b, :, t, :], demo[b, t, :]) for b in range(b_size) if keep[b, t]])
    losses = [loss for problems in groups if problems for loss in _reference_group(problems, temps)]
    return sum(losses) / len(losses)


# ---------------------------------------------------------------------------------------------------


def _batch(b=3, n_gen=4, horizon=6, dims=3, seed=0, pad=True):
    torch.manual_seed(seed)
    scales = torch.logspace(-2, 2, dims, dtype=torch.float64)  # channels from 1e-2 to 1e2
    demo = torch.randn(b, horizon, dims, dtype=torch.float64) * scales
    gen = (demo[:, None] + torch.randn(b, n_gen, horizon, dims, dtype=torch.float64) * scales).requires_grad_()
    is_pad = torch.zeros(b, horizon, dtype=torch.bool)
    if pad:
        is_pad[1, -2:] = True  # partly padded
        is_pad[2, 2:] = True  # mostly padded: whole timestep units vanish
    return gen, demo, is_pad


@pytest.mark.parametrize("grouping", GROUPINGS)
def test_matches_loop_reference_loss_and_gradient(grouping):
    gen, demo, is_pad = _batch()
    loss, _ = drift_loss(gen, demo, is_pad, grouping)
    (grad,) = torch.autograd.grad(loss, gen)
    ref = reference_drift_loss(gen, demo, is_pad, grouping)
    (ref_grad,) = torch.autograd.grad(ref, gen)
    assert loss.dtype == torch.float64
    torch.testing.assert_close(loss, ref, rtol=1e-9, atol=0)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-8, atol=1e-12 * ref_grad.abs().max().item())


@pytest.mark.parametrize("grouping", GROUPINGS)
def test_gradient_points_along_the_drift(grouping):
    gen, demo, is_pad = _batch(b=4, n_gen=5, horizon=8, dims=4, seed=1)
    loss, _ = drift_loss(gen, demo, is_pad, grouping)
    (grad,) = torch.autograd.grad(loss, gen)
    g, a, valid = to_units(gen.detach(), demo, is_pad, grouping)
    drift, s, _, _ = drift_field(g, a, valid)
    grad_units = to_units(grad, demo, is_pad, grouping)[0]
    live = valid[..., None].expand(drift.shape[:3]) & (drift.norm(dim=-1) > 0)
    cos = torch.nn.functional.cosine_similarity(-grad_units, drift, dim=-1)[live]
    assert cos.numel() > 0 and torch.all(cos > 1 - 1e-9)
    # and with the exact factor: d/dg mean ||g/s - goal||^2 / S = -2 V / (s S G n_units)
    n_units, size, n_gen = valid.sum(), g.shape[-1], g.shape[2]
    expected = -2 * drift / (s[:, None, None, None] * size * n_gen * n_units) * valid[..., None, None]
    torch.testing.assert_close(grad_units, expected, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("grouping", GROUPINGS)
def test_drift_invariant_to_translation_and_uniform_scaling(grouping):
    gen, demo, _ = _batch(b=3, n_gen=4, horizon=5, dims=3, seed=2, pad=False)
    gen = gen.detach()

    def field(g, a):
        units = to_units(g, a, None, grouping)
        return drift_field(*units)[0]

    base = field(gen, demo)
    shift = torch.randn(5, 3, dtype=torch.float64) * 10
    torch.testing.assert_close(field(gen + shift, demo + shift), base, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(field(gen * 3.7, demo * 3.7), base, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("grouping", GROUPINGS)
def test_padded_timesteps_get_zero_gradient_and_cannot_leak(grouping):
    gen, demo, is_pad = _batch()
    loss, _ = drift_loss(gen, demo, is_pad, grouping)
    (grad,) = torch.autograd.grad(loss, gen)
    # Garbage (even inf / nan) at padded steps changes nothing.
    dirty_gen = gen.detach().clone()
    dirty_demo = demo.clone()
    dirty_gen[is_pad[:, None, :].expand(-1, gen.shape[1], -1)] = float("nan")
    dirty_demo[is_pad] = float("inf")
    dirty_gen.requires_grad_()
    dirty_loss, _ = drift_loss(dirty_gen, dirty_demo, is_pad, grouping)
    (dirty_grad,) = torch.autograd.grad(dirty_loss, dirty_gen)
    pad_mask = is_pad[:, None, :, None].expand_as(grad)
    assert torch.all(grad[pad_mask] == 0) and torch.all(dirty_grad[pad_mask] == 0)
    assert torch.equal(dirty_loss, loss) and torch.equal(dirty_grad, grad)
    assert grad[~pad_mask].abs().sum() > 0


@pytest.mark.parametrize("grouping", ("action_dim", "chunk"))
def test_fully_padded_rows_are_excluded(grouping):
    gen, demo, is_pad = _batch(pad=False)
    is_pad[2] = True
    loss, _ = drift_loss(gen, demo, is_pad, grouping)
    loss_without, _ = drift_loss(gen[:2], demo[:2], is_pad[:2], grouping)
    torch.testing.assert_close(loss, loss_without, rtol=1e-12, atol=0)


@pytest.mark.parametrize("grouping", GROUPINGS)
def test_target_is_fp32_under_bf16_autocast(grouping):
    torch.manual_seed(3)
    layer = torch.nn.Linear(16, 9)
    x = torch.randn(8 * 4 * 10, 16)
    demo = torch.randn(8, 10, 9)
    is_pad = torch.zeros(8, 10, dtype=torch.bool)
    is_pad[0, -3:] = True
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gen = layer(x).view(8, 4, 10, 9)  # bf16, as a policy head under autocast would produce
        assert gen.dtype == torch.bfloat16
        field_amp = drift_field(*to_units(gen, demo, is_pad, grouping))
        loss_amp, _ = drift_loss(gen.float(), demo, is_pad, grouping)
    field_fp32 = drift_field(*to_units(gen.detach().float(), demo, is_pad, grouping))
    for amp, ref in zip(field_amp, field_fp32):
        assert amp.dtype == torch.float32
        assert torch.equal(amp, ref)
    loss_fp32, _ = drift_loss(gen.detach().float(), demo, is_pad, grouping)
    assert loss_amp.dtype == torch.float32 and torch.equal(loss_amp, loss_fp32)


def test_info_diagnostics():
    gen, demo, is_pad = _batch(pad=False)
    _, info = drift_loss(gen, demo, is_pad, "action_dim")
    g = gen.detach()
    assert info["scale"].shape == (3,) and torch.all(info["scale"] > 0)
    assert info["force_rms"].shape == (3,)
    # centroid MSE and sample variance from their definitions
    centroid = ((g.mean(1) - demo) ** 2).mean()
    torch.testing.assert_close(info["centroid_mse"], centroid, rtol=1e-9, atol=0)
    torch.testing.assert_close(info["sample_var"], g.var(1, correction=0).mean(), rtol=1e-9, atol=0)
    assert all(not v.requires_grad for v in info.values())


def test_rejects_bad_input():
    gen, demo, is_pad = _batch()
    with pytest.raises(ValueError):
        drift_loss(gen, demo, is_pad, "per_joint")
    with pytest.raises(ValueError):
        drift_loss(gen, demo[:, :-1], is_pad)
