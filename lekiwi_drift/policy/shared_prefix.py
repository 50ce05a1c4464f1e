"""The action-expert pass over one prefix shared by many passes: SmolVLA's `denoise_step`, same math,
less work when a chunk needs several expert passes (K KeyStone candidates, or 10 Euler steps).

What the stock pass (lerobot 0.6.1 `VLAFlowMatching.denoise_step` -> `SmolVLMWithExpertModel.forward`)
repeats although it never changes within a chunk:
- for K samples the prefix KV cache is first repeated K times along the batch (16 layers of keys and
  values, 79 MB at full size);
- every cross-attention layer re-projects the VLM's prefix keys and values through the expert's
  `k_proj` / `v_proj`, for every sample and every Euler step;
- every self-attention layer concatenates the suffix keys/values onto the cache (and crops it after);
- eager attention copies the keys/values to every query head (grouped-query attention).

Here `prepare` projects the cross layers' prefix keys/values once per chunk, at batch B (one row per
observation), and `velocity` lets the queries of all S = N/B samples of an observation attend to
that observation's prefix keys in one matmul, per key/value head, without repeating, expanding or
concatenating anything; each sample's own (causal) suffix keys are a second, small matmul, and one
softmax covers both. Every projection, norm, MLP, RoPE, mask, scale and dtype cast is SmolVLA's own, in
its order, so the velocity equals the stock pass up to float summation order
(tests/test_shared_prefix.py compares them).

Inference only: training keeps the stock path, whose autograd graph runs through the repeated cache.
"""

from __future__ import annotations

import torch
from lerobot.policies.common.vla_utils import make_att_2d_masks
from lerobot.policies.smolvla.smolvlm_with_expert import apply_rope
from torch import Tensor


def _expert_layers(tower) -> list:
    return tower.get_model_layers([tower.get_vlm_model().text_model, tower.lm_expert])[1]


def _self_attention(tower, layer_idx: int) -> bool:
    """The rule `SmolVLMWithExpertModel.forward` applies to a pass over a filled cache."""
    every = tower.self_attn_every_n_layers
    return "cross" not in tower.attention_mode or (every > 0 and layer_idx % every == 0)


def supported(model) -> bool:
    """True when every VLM layer has its expert layer (SmolVLA's default); else use the stock pass."""
    return all(layer is not None for layer in _expert_layers(model.vlm_with_expert))


def _project(states: Tensor, proj, head_dim: int) -> Tensor:
    """Cached VLM keys/values [B, H, L, D] through an expert projection, as SmolVLA's cross layer does
    it (cast to the projection's dtype, heads flattened), returned as [B, H', L, D]."""
    b, h, length, d = states.shape
    flat = states.transpose(1, 2).to(dtype=proj.weight.dtype).reshape(b, length, h * d)
    return proj(flat).view(b, length, -1, head_dim).transpose(1, 2)


def blocked(mask: Tensor, observations: int) -> Tensor:
    """[N, T, L] attention mask (True = may attend) -> the [B, 1, S, 1, T, L] "may not" mask `attend` takes."""
    n, t, length = mask.shape
    return ~mask.view(observations, n // observations, t, length)[:, None, :, None]


def attend(
    q: Tensor, kp: Tensor, vp: Tensor, blocked_: Tensor, ks: Tensor | None = None, vs: Tensor | None = None
) -> Tensor:
    """SmolVLA's eager attention for N = B·S query rows over a prefix shared by each group of S rows.

    q [N, T, H, D] (rotated); kp, vp [B, Hkv, Lp, D]: the prefix keys/values of the B observations;
    ks, vs [N, T, Hkv, D]: each row's own suffix keys/values (None: attend to the prefix only);
    blocked_: from `blocked(mask [N, T, Lp (+ T)])`. Returns [N, T, H·D], head h reading key/value head
    h // (H / Hkv), as the stock `eager_attention_forward` does after expanding the heads.
    """
    n, t, heads, d = q.shape
    b, kv_heads, lp, _ = kp.shape
    s, g = n // b, heads // kv_heads
    # Stock upcasts queries and keys to fp32 and scales after the product.
    qf = q.float().view(b, s, t, kv_heads, g, d).permute(0, 3, 1, 4, 2, 5)  # [B, Hkv, S, g, T, D]
    scores = torch.matmul(qf.reshape(b, kv_heads, s * g * t, d), kp.float().transpose(-1, -2))
    scores = scores.view(b, kv_heads, s, g, t, lp)
    if ks is not None:
        kf = ks.float().view(b, s, t, kv_heads, d).permute(0, 3, 1, 4, 2)  # [B, Hkv, S, D, T]
        own = torch.matmul(qf.reshape(b, kv_heads, s, g * t, d), kf).view(b, kv_heads, s, g, t, t)
        scores = torch.cat([scores, own], dim=-1)
    # In place on the fresh product: the same values as stock's `*=` and `torch.where`, fewer copies.
    scores.mul_(d**-0.5).masked_fill_(blocked_, torch.finfo(torch.float32).min)
    probs = torch.softmax(scores, dim=-1).to(dtype=vp.dtype)
    out = torch.matmul(probs[..., :lp].reshape(b, kv_heads, s * g * t, lp), vp).view(b, kv_heads, s, g, t, d)
    if vs is not None:
        vf = vs.view(b, s, t, kv_heads, d).permute(0, 3, 1, 2, 4)  # [B, Hkv, S, T, D]
        out = out + torch.matmul(probs[..., lp:].reshape(b, kv_heads, s, g * t, t), vf).view(out.shape)
    return out.permute(0, 2, 4, 1, 3, 5).reshape(n, t, heads * d)


def prepare(model, cache) -> list[tuple]:
    """Once per chunk: per expert layer (layer, prefix keys, prefix values, self-attention?), keys and
    values [B, Hkv, Lp, D] at batch B (one row per observation, not repeated). Self-attention layers read
    the VLM's cached (post-RoPE) keys/values as they are; cross-attention layers get them through the
    expert's k/v projections here, once, instead of on every pass."""
    tower = model.vlm_with_expert
    kv = []
    for i, layer in enumerate(_expert_layers(tower)):
        keys, values = cache.layers[i].keys, cache.layers[i].values
        if _self_attention(tower, i):
            kv.append((layer, keys, values, True))
        else:
            attn = layer.self_attn
            kv.append(
                (layer, _project(keys, attn.k_proj, attn.head_dim), _project(values, attn.v_proj, attn.head_dim), False)
            )
    return kv


def velocity(model, kv: list, pad_masks: Tensor, x_t: Tensor, timestep: Tensor) -> Tensor:
    """v(x_t, t) for N = B·S rows (row b·S + j: sample j of observation b) -> [N, T, A], fp32, over the
    prefix that `prepare` made ready (pad_masks [B, Lp]). A plain function, so `torch.compile` takes it."""
    n, b = x_t.shape[0], pad_masks.shape[0]
    if n % b:
        raise ValueError(f"{n} expert rows do not split evenly over {b} observations")
    suffix_embs, suffix_pad, suffix_att = model.embed_suffix(x_t, timestep)
    t, lp = suffix_pad.shape[1], pad_masks.shape[1]
    # Masks and positions exactly as `denoise_step` builds them for the repeated prefix.
    pad = pad_masks.repeat_interleave(n // b, dim=0)
    mask = torch.cat([pad[:, None, :].expand(n, t, lp), make_att_2d_masks(suffix_pad, suffix_att)], dim=2)
    positions = pad.sum(dim=-1)[:, None] + torch.cumsum(suffix_pad, dim=1) - 1
    cross_positions = positions - positions.min(dim=1, keepdim=True).values  # the expert's own, from 0
    blocked_self, blocked_cross = blocked(mask, b), blocked(mask[:, :, :lp].contiguous(), b)

    x = suffix_embs
    for layer, kp, vp, self_attn in kv:
        attn = layer.self_attn
        h = layer.input_layernorm(x).to(dtype=attn.q_proj.weight.dtype)
        shape = (n, t, -1, attn.head_dim)
        q = attn.q_proj(h).view(shape)
        if self_attn:
            k = apply_rope(attn.k_proj(h).view(shape), positions)
            out = attend(apply_rope(q, positions), kp, vp, blocked_self, k, attn.v_proj(h).view(shape))
        else:
            out = attend(apply_rope(q, cross_positions), kp, vp, blocked_cross)
        # In-place residual adds, as stock: the sum keeps the layer's dtype (bf16 stays bf16).
        y = attn.o_proj(out.to(dtype=attn.o_proj.weight.dtype))
        y += x
        x = layer.mlp(layer.post_attention_layernorm(y))
        x += y
    x = model.vlm_with_expert.lm_expert.norm(x)
    return model.action_out_proj(x[:, -model.config.chunk_size :].to(dtype=torch.float32))
