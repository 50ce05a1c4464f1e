"""`bench toy`: the synthetic data's modes and weights, the metrics on known distributions, the
bf16 'no guard' emulation against the library loss, and a --quick run of the whole study."""

from __future__ import annotations

import argparse

import pytest
import torch
from PIL import Image

from lekiwi_drift.bench.toy_data import (
    CHUNK,
    GRIPPER,
    LEFT,
    THETA_VEL,
    Y_VEL,
    chunk_modes,
    left_probability,
    sample_chunks,
    sample_contexts,
    switch_steps,
)
from lekiwi_drift.bench.toy_metrics import energy_distance, sample_metrics, wasserstein_1d


def _draw(context_row, n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return sample_chunks(torch.as_tensor(context_row).repeat(n, 1), gen)


@pytest.mark.parametrize("obstacle", [-1.0, -0.3, 0.0, 0.5, 1.0])
def test_mode_weights_follow_the_context(obstacle):
    n = 4000
    draw = _draw([0.2, 0.5, obstacle], n)
    p = float(left_probability(torch.tensor([[0.2, 0.5, obstacle]]))[0])
    frac = (draw.mode == LEFT).float().mean().item()
    assert abs(frac - p) < 4 * (p * (1 - p) / n) ** 0.5 + 1e-3
    # The classifier recovers the drawn mode from either base channel, on every true sample.
    y_mode, th_mode = chunk_modes(draw.chunks)
    assert torch.equal(y_mode, draw.mode) and torch.equal(th_mode, draw.mode)


def test_channels_have_lekiwi_units_and_opposite_signed_base_profiles():
    draw = _draw([0.0, 0.5, 0.0], 500)
    c = draw.chunks
    grip = c[..., GRIPPER]
    assert set(grip.unique().tolist()) == {0.0, 100.0}  # strictly bimodal gripper
    assert torch.equal(switch_steps(c), draw.switch)
    assert (draw.switch > 5).all() and (draw.switch < CHUNK - 4).all()
    left = draw.mode == LEFT
    mid = CHUNK // 4  # a quarter in: y.vel bump up, theta.vel turning (negative for a left pass)
    assert (c[left, mid, Y_VEL] > 0).all() and (c[~left, mid, Y_VEL] < 0).all()
    assert (c[left, mid, THETA_VEL] < 0).all() and (c[~left, mid, THETA_VEL] > 0).all()
    assert c[..., Y_VEL].abs().max() < 0.3  # m/s
    assert c[..., THETA_VEL].abs().max() > 15  # deg/s
    assert c[..., 1].min() < -80  # shoulder lift starts near -90 deg


def test_energy_distance_zero_for_same_distribution_positive_for_shifted():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(400, 5, generator=g), torch.randn(400, 5, generator=g)
    assert energy_distance(x, x).abs() < 0.02  # U-statistic: ~0, not exactly 0
    assert energy_distance(x, y).abs() < 0.05
    assert energy_distance(x, y + 1.0) > 0.5
    # Batched over leading dims.
    assert energy_distance(torch.stack([x, x]), torch.stack([y, y + 1])).shape == (2,)
    assert wasserstein_1d(torch.tensor([1.0, 2, 3]), torch.tensor([3.0, 2, 1])) == 0
    assert wasserstein_1d(torch.tensor([0.0, 0]), torch.tensor([2.0, 2])) == 2


def test_sample_metrics_on_true_vs_true_and_on_a_collapsed_generator():
    gen = torch.Generator().manual_seed(3)
    ctx = sample_contexts(6, gen)
    ctx[:, 2] = 0.0  # 50/50 contexts
    rep = ctx.repeat_interleave(64, 0)
    a = sample_chunks(rep, gen).chunks.view(6, 64, CHUNK, 9)
    b = sample_chunks(rep, gen).chunks.view(6, 64, CHUNK, 9)
    std = a.flatten(0, 2).std(0)
    same = sample_metrics(b, a, ctx, std)
    assert abs(same["ed_dim_mean"]) < 0.05 and same["mode_consistency"] == 1.0
    assert same["mode_weight_err"] < 0.2 and same["gripper_crisp"] == 1.0
    # A generator that always passes left (mode collapse) and never closes the gripper.
    collapsed = a.clone()
    collapsed[..., Y_VEL] = collapsed[..., Y_VEL].abs()
    collapsed[..., THETA_VEL] = -collapsed[..., THETA_VEL].abs() * torch.sign(
        torch.sin(2 * torch.pi * torch.arange(CHUNK) / CHUNK)
    )
    collapsed[..., GRIPPER] = 100.0
    bad = sample_metrics(collapsed, a, ctx, std)
    assert bad["mode_weight_err"] > 0.4
    assert bad["ed_base"] > same["ed_base"] + 0.1 and bad["ed_gripper"] > 0.5
    assert bad["switch_w1_steps"] > 10


@pytest.mark.parametrize("grouping", ["action_dim", "chunk", "timestep"])
def test_unguarded_loss_in_fp64_is_the_library_loss(grouping):
    """The 'no guard' arm differs from drift_loss only in the precision of the target."""
    from lekiwi_drift.bench.toy_train import drift_loss_unguarded
    from lekiwi_drift.policy.drift import drift_loss

    g = torch.Generator().manual_seed(1)
    gen = torch.randn(4, 8, 12, 9, generator=g, dtype=torch.float64, requires_grad=True)
    demo = torch.randn(4, 12, 9, generator=g, dtype=torch.float64)
    ref, _ = drift_loss(gen, demo, grouping=grouping)
    (ref_grad,) = torch.autograd.grad(ref, gen)
    ours = drift_loss_unguarded(gen, demo, grouping, dtype=torch.float64)
    (grad,) = torch.autograd.grad(ours, gen)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-9)
    # In bf16 the target is visibly coarser.
    bf = drift_loss_unguarded(gen.float(), demo.float(), grouping, dtype=torch.bfloat16)
    (bf_grad,) = torch.autograd.grad(bf, gen)
    assert (bf_grad.double() - ref_grad).norm() > 1e-3 * ref_grad.norm()


def test_quick_study_runs_end_to_end(tmp_path, capsys):
    from lekiwi_drift.bench import toy

    parser = argparse.ArgumentParser()
    toy.add_arguments(parser)
    # Its speed ("--quick" is a < 30 s smoke run) is a benchmark figure, not a unit-test assertion.
    args = parser.parse_args(["--quick", "--out", str(tmp_path)])
    assert toy.run(args) == 0
    out, err = capsys.readouterr()
    steps = sum(spec.steps for spec in toy.plan(args))  # --quick set the sizes
    assert "training: 100%" in err and f"{steps}/{steps}" in err  # progress of every step, on stderr
    assert out.count("steps in") == len(toy.plan(args))  # a result line per run, on stdout
    for row in (
        "true sampler",
        "drift-action_dim",
        "drift-chunk",
        "drift-timestep",
        "FM-10",
        "FM-1",
        "drift-action_dim [bf16-guard]",
        "drift-action_dim [bf16-noguard]",
    ):
        assert f"| {row} |" in out
    assert (tmp_path / "toy_results.json").stat().st_size > 0
    with Image.open(tmp_path / "toy_grouping_metrics.png") as img:  # matplotlib, fixed pixel sizes (charts.py)
        assert img.format == "PNG" and img.size == (1500, 900)
    with Image.open(tmp_path / "toy_grouping_samples.png") as img:  # one 110 px row per method, true sampler too
        assert img.format == "PNG" and img.size == (1300, 60 + 110 * 8)
