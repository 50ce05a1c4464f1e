"""`bench latency` on the TINY model: end to end with every variant, the stock baseline really shares
our weights, and the batched-vision lever keeps the outputs. Never needs a GPU."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

pytest.importorskip("lerobot.policies.smolvla")

import lekiwi_drift.policy  # noqa: E402,F401  (registers smolvla_drift)

VARIANTS = ("drift-1", "FM-10", "FM-1", "drift+KS K=8", "drift+KS K=8, stock pass", "stock FM-10", "stock FM-1")


@pytest.fixture(scope="module")
def tiny_pair(tiny_vlm_dir):
    from lekiwi_drift.bench.latency_models import build_policies, make_batch, make_config

    cfg = make_config(tiny_vlm_dir, tiny=True, cameras=3, height=64, width=64, device="cpu")
    ours, stock = build_policies(cfg, torch.float32)
    return ours, stock, make_batch(ours, 3, 64, 64)


def test_stock_baseline_shares_our_weights_and_matches_fm10(tiny_pair):
    ours, stock, batch = tiny_pair
    ours_sd, stock_sd = ours.state_dict(), stock.state_dict()
    assert ours_sd.keys() == stock_sd.keys()
    assert all(ours_sd[k].data_ptr() == stock_sd[k].data_ptr() for k in ours_sd)
    noise = torch.randn(1, ours.config.chunk_size, ours.config.max_action_dim, generator=torch.Generator().manual_seed(0))
    ours.config.sampler, ours.config.flow_steps, ours.config.keystone_samples = "flow", 10, 1
    ours.config.validate()
    stock.config.num_steps = 10
    a = ours.predict_action_chunk(dict(batch), noise=noise)
    b = stock.predict_action_chunk(dict(batch), noise=noise)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    ours.config.sampler = "drift"
    ours.config.validate()


def test_batched_vision_keeps_outputs(tiny_pair):
    ours, _, batch = tiny_pair
    noise = torch.randn(1, ours.config.chunk_size, ours.config.max_action_dim, generator=torch.Generator().manual_seed(1))
    calls = []
    vision = ours.model.vlm_with_expert.get_vlm_model().vision_model
    hook = vision.register_forward_hook(lambda module, args, kwargs, out: calls.append(kwargs["pixel_values"].shape[0]),
                                        with_kwargs=True)
    try:
        ours.config.batch_vision = False
        plain = ours.predict_action_chunk(dict(batch), noise=noise)
        assert calls == [1, 1, 1], "stock layout: one vision call per camera"
        calls.clear()
        ours.config.batch_vision = True
        fast = ours.predict_action_chunk(dict(batch), noise=noise)
    finally:
        hook.remove()
        ours.config.batch_vision = True
    assert calls == [3], "three cameras must go through ONE vision call"
    torch.testing.assert_close(fast, plain, rtol=0, atol=1e-5)  # stated tolerance: 1e-5 absolute


@pytest.mark.parametrize("special_tokens", [False, True])
def test_batched_prefix_is_stock_layout(tiny_vlm_dir, special_tokens):
    """Same tokens, pad masks and attention masks as stock `embed_prefix`, with and without SmolVLA's
    image start/end tokens."""
    from lerobot.policies.smolvla.modeling_smolvla import VLAFlowMatching

    from lekiwi_drift.bench.latency_models import build_policies, make_batch, make_config

    cfg = make_config(tiny_vlm_dir, tiny=True, cameras=3, height=64, width=64, device="cpu")
    cfg.add_image_special_tokens = special_tokens
    ours, _ = build_policies(cfg, torch.float32)
    inputs = ours._prefix_inputs(make_batch(ours, 3, 64, 64))
    with torch.no_grad():
        batched = ours.model.embed_prefix(*inputs[:4], state=inputs[4])
        stock = VLAFlowMatching.embed_prefix(ours.model, *inputs[:4], state=inputs[4])
    torch.testing.assert_close(batched[0], stock[0], rtol=0, atol=1e-5)
    assert torch.equal(batched[1], stock[1]) and torch.equal(batched[2], stock[2])


def test_bench_runs_end_to_end_with_every_variant(tiny_vlm_dir, tmp_path, capsys):
    from lekiwi_drift.bench import latency

    parser = argparse.ArgumentParser()
    latency.add_arguments(parser)
    args = parser.parse_args(["--tiny", "--rounds", "1", "--warmup", "1", "--threads", "1",
                              "--vlm-dir", str(tiny_vlm_dir), "--out", str(tmp_path)])
    assert latency.run(args) == 0
    out = capsys.readouterr().out
    for label in ("ours drift-1", "ours FM-10", "ours FM-1", "ours drift+KS K=8", "ours drift+KS K=8, stock pass",
                  "LeRobot FM-10", "LeRobot FM-1"):
        assert f"| {label} |" in out
    # The shared-prefix pass is checked against SmolVLA's stock pass before timing.
    assert "outputs, shared vs stock pass, drift K=8 candidates: max |diff|" in out and "(met;" in out
    assert "KeyStone overhead" in out and "FM-10 / drift-1" in out
    data = json.loads((tmp_path / "latency.json").read_text())
    assert set(data["rows"]) == set(VARIANTS)
    for row in data["rows"].values():
        assert row["total"] > 0 and row["prefix"] > 0 and row["expert"] > 0 and row["peak_mib"] > 0
    assert data["rows"]["drift+KS K=8"]["keystone"] > 0
    assert (tmp_path / "latency.png").stat().st_size > 0


def test_bf16_backbone_runs_on_cpu(tiny_vlm_dir):
    """The GPU script's dtype path (bf16 VLM + expert, fp32 projections) has no dtype clash."""
    from lekiwi_drift.bench.latency_models import build_policies, make_batch, make_config

    cfg = make_config(tiny_vlm_dir, tiny=True, cameras=3, height=64, width=64, device="cpu")
    ours, stock = build_policies(cfg, torch.bfloat16)
    batch = make_batch(ours, 3, 64, 64)
    for sampler, k in (("drift", 1), ("drift", 8), ("flow", 1)):
        ours.config.sampler, ours.config.keystone_samples = sampler, k
        ours.config.validate()
        assert torch.isfinite(ours.predict_action_chunk(dict(batch))).all()
    assert torch.isfinite(stock.predict_action_chunk(dict(batch))).all()
