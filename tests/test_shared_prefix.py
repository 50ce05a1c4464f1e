"""The shared-prefix expert pass equals SmolVLA's stock `denoise_step` over the repeated prefix."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("lerobot.policies.smolvla")

from tests.test_policy import A_MAX, T, make_policy, noise, processors, raw_batch  # noqa: E402

TOL = {"rtol": 1e-5, "atol": 1e-5}


def encoded(policy, batch):
    """(cache, pad masks) of the prefix, batch rows as given."""
    images, img_masks, lang, lang_masks, state = policy._prefix_inputs(batch)
    return policy.model.encode_prefix(images, img_masks, lang, lang_masks, state)


def two_tasks(pre, seed=1):
    """Two observations whose language prompts differ in length, so their prefix pad masks differ."""
    raw = raw_batch(bsize=2, seed=seed)
    raw["task"] = ["pick", "pick up the salt bottle and place it in the basket"]
    return pre(raw)


@pytest.mark.parametrize(
    "overrides",
    [{}, {"attention_mode": "self_attn"}, {"self_attn_every_n_layers": 3}, {"num_vlm_layers": 5}],
    ids=["default", "all-self-attention", "self-every-3", "five-layers"],
)
@pytest.mark.parametrize("samples", [1, 4])
def test_velocity_equals_the_stock_pass(tiny_vlm_dir, overrides, samples):
    from lekiwi_drift.policy.shared_prefix import prepare, supported, velocity

    policy = make_policy(tiny_vlm_dir, **overrides).eval()
    model = policy.model
    assert supported(model)
    pre, _ = processors(policy)
    batch = two_tasks(pre)
    x_t = noise(2 * samples, T, A_MAX)
    t = torch.rand(2 * samples, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        cache, pads = encoded(policy, batch)
        assert not torch.equal(pads[0], pads[1])
        kv = prepare(model, cache)
        fast = velocity(model, kv, pads, x_t, t)
        again = velocity(model, kv, pads, x_t, t)  # nothing the prepared prefix holds changes between passes
        cache, pads = model.expand_prefix(cache, pads, samples)
        stock = model.denoise_step(prefix_pad_masks=pads, past_key_values=cache, x_t=x_t, timestep=t)
    assert fast.shape == stock.shape == (2 * samples, T, A_MAX)
    torch.testing.assert_close(fast, stock, **TOL)
    assert torch.equal(fast, again)


@pytest.mark.parametrize(
    ("sampler", "extra"), [("flow", {"flow_steps": 10}), ("drift", {"keystone_samples": 6, "keystone_clusters": 3})]
)
def test_chunks_equal_with_and_without_the_shared_prefix(tiny_vlm_dir, sampler, extra):
    policy = make_policy(tiny_vlm_dir, sampler=sampler, **extra).eval()
    pre, _ = processors(policy)
    batch = two_tasks(pre, seed=4)
    k = extra.get("keystone_samples", 1)
    eps = noise(2, k, T, A_MAX) if k > 1 else noise(2, T, A_MAX)
    chunks = {}
    for shared in (True, False):
        policy.config.shared_prefix_expert = shared
        policy.reset()
        chunks[shared] = policy.predict_action_chunk(batch, noise=eps)
    torch.testing.assert_close(chunks[True], chunks[False], **TOL)


def test_only_models_with_every_expert_layer_take_the_shared_pass(tiny_vlm_dir):
    from lekiwi_drift.policy.shared_prefix import supported

    # An expert layer every 2nd VLM layer: the shared pass does not model the skipped layers.
    assert not supported(make_policy(tiny_vlm_dir, num_expert_layers=2).model)


def test_velocity_in_bf16_matches_the_stock_pass_to_bf16_precision(tiny_vlm_dir):
    from lekiwi_drift.policy.shared_prefix import prepare, velocity

    policy = make_policy(tiny_vlm_dir).eval()
    policy.model.vlm_with_expert.to(dtype=torch.bfloat16)  # as on a GPU: backbone bf16, projections fp32
    pre, _ = processors(policy)
    batch = two_tasks(pre, seed=5)
    x_t, t = noise(8, T, A_MAX), torch.ones(8)
    with torch.no_grad():
        cache, pads = encoded(policy, batch)
        fast = velocity(policy.model, prepare(policy.model, cache), pads, x_t, t)
        cache, pads = policy.model.expand_prefix(cache, pads, 4)
        stock = policy.model.denoise_step(prefix_pad_masks=pads, past_key_values=cache, x_t=x_t, timestep=t)
    assert fast.dtype == stock.dtype == torch.float32
    # bf16 keeps 8 bits of mantissa; the two attention halves round once more than stock's one product.
    err = (fast - stock).abs().max().item()
    print(f"bf16 max |shared - stock| = {err:.4f} (velocity scale {stock.abs().max().item():.2f})")
    torch.testing.assert_close(fast, stock, rtol=0.03, atol=0.03)


def test_real_time_chunking_guidance_runs_through_the_shared_pass(tiny_vlm_dir):
    """RTC differentiates the velocity w.r.t. x_t inside the Euler loop: the shared pass must carry that
    gradient (the prefix is a constant of x_t) and give the stock pass's chunk."""
    from lerobot.policies.rtc.configuration_rtc import RTCConfig

    chunks = {}
    for shared in (True, False):
        policy = make_policy(
            tiny_vlm_dir, sampler="flow", flow_steps=10, rtc_config=RTCConfig(enabled=True, execution_horizon=5)
        ).eval()
        policy.config.shared_prefix_expert = shared
        pre, _ = processors(policy)
        prev = noise(1, T, A_MAX, seed=9)
        chunks[shared] = policy.predict_action_chunk(
            pre(raw_batch(bsize=1)),
            noise=noise(1, T, A_MAX),
            inference_delay=2,
            prev_chunk_left_over=prev,
            execution_horizon=5,
        )
    torch.testing.assert_close(chunks[True], chunks[False], **TOL)
    policy = make_policy(tiny_vlm_dir, sampler="flow", flow_steps=10).eval()  # the same, unguided
    plain = policy.predict_action_chunk(pre(raw_batch(bsize=1)), noise=noise(1, T, A_MAX))
    assert (plain - chunks[True]).abs().max() > 0.1  # the guidance really acted (3.2 when written)
