"""The one-step generator and the inference samplers, on top of SmolVLA's `VLAFlowMatching`.

Parametrisation (the same function in training and deployment):

    chunk(ε) = ε − v_θ(ε, t = 1 | prefix)

SmolVLA's flow convention is x_t = t·noise + (1−t)·actions with velocity target u = noise − actions,
so t = 1 is pure noise and one Euler step of size −1 from there gives x_0 = x_1 − v. Defining the
one-step output this way means (a) a drift-trained and a flow-trained checkpoint share one
parametrisation, so `sampler="drift"` on a flow checkpoint *is* truncated FM-1, and FM-1 warm-starts
drift training; (b) the expert sees exactly the inputs it sees at the first step of flow sampling.

Cost model: the prefix (images, language, state) is encoded once into the KV cache; the cache is
repeated along the batch (G samples in training, K KeyStone candidates at inference) and a single
batched expert pass with t pinned to 1.0 produces every sample, so G or K samples cost about one
expert pass, not G or K prefix encodings. At inference the expert passes read the prefix without
repeating it (`shared_prefix.prepare` / `velocity`, the same function with less work; config
`shared_prefix_expert`).
"""

from __future__ import annotations

import time
from functools import partial

import torch
from lerobot.policies.common.flow_matching import euler_integrate
from lerobot.policies.common.vla_utils import make_att_2d_masks
from lerobot.policies.smolvla.modeling_smolvla import VLAFlowMatching
from torch import Tensor

from lekiwi_drift.policy import shared_prefix
from lekiwi_drift.policy.keystone import flatten_real, keystone_select


def _clock(device: torch.device) -> float:
    # CUDA kernels run asynchronously; without a sync the timings would measure launch time only.
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


class DriftFlowMatching(VLAFlowMatching):
    """`VLAFlowMatching` plus cached-prefix one-step generation and the drift/flow/KeyStone samplers.

    Only adds methods: parameters, state-dict keys and the flow-matching `forward` are SmolVLA's,
    so `smolvla_drift` checkpoints have SmolVLA's layout.
    """

    def embed_prefix(self, images, img_masks, lang_tokens, lang_masks, state=None):
        """SmolVLA's prefix (same tokens, masks and order), with every camera encoded in ONE vision-tower
        call instead of one call per camera (config `batch_vision`).

        The cameras go through the tower stacked along the batch, which treats rows independently, so
        the embeddings equal the per-camera ones up to kernel-level float differences (tested); on a GPU
        that is one launch sequence instead of three. The camera tokens are laid out as stock does
        (optional start token, embedding scaled by sqrt(dim), optional end token); the language and
        state tokens come from stock `embed_prefix` itself, called with no cameras.
        """
        if (
            not self.config.batch_vision
            or len(images) < 2
            or self.prefix_length >= 0
            or len({tuple(img.shape) for img in images}) != 1
        ):
            return super().embed_prefix(images, img_masks, lang_tokens, lang_masks, state=state)
        tower, bsize = self.vlm_with_expert, images[0].shape[0]
        embs, pads = [], []

        def special(token: Tensor) -> None:
            emb = tower.embed_language_tokens(token.to(device=tower.vlm.device)).unsqueeze(0).expand(bsize, -1, -1)
            embs.append(emb)
            pads.append(torch.ones_like(emb[:, :, 0], dtype=torch.bool))

        encoded = tower.embed_image(torch.cat(images, dim=0)).split(bsize, dim=0)
        for img_emb, img_mask in zip(encoded, img_masks, strict=True):
            if self.add_image_special_tokens:
                special(self.global_image_start_token)
            embs.append(img_emb * torch.tensor(img_emb.shape[-1] ** 0.5, dtype=img_emb.dtype, device=img_emb.device))
            pads.append(img_mask[:, None].expand(bsize, img_emb.shape[1]))
            if self.add_image_special_tokens:
                special(self.image_end_token)
        rest, rest_pads, rest_att = super().embed_prefix([], [], lang_tokens, lang_masks, state=state)
        n_image = sum(e.shape[1] for e in embs)
        # Camera tokens attend bidirectionally with language (0), as in stock; the rest keep their masks.
        att = torch.cat([torch.zeros(bsize, n_image, dtype=torch.bool, device=rest_att.device), rest_att], dim=1)
        return torch.cat([*embs, rest], dim=1), torch.cat([*pads, rest_pads], dim=1), att

    def encode_prefix(self, images, img_masks, lang_tokens, lang_masks, state):
        """Run the VLM over the prefix once; returns (KV cache, prefix pad masks [B, L]).

        Mirrors the prefill in `VLAFlowMatching.sample_actions`, but keeps the autograd graph when
        called under grad (training): the state projection (and the VLM, if unfrozen) learn through
        the cache. `use_cache=True` always: the expert pass below reads the prefix from the cache.
        """
        prefix_embs, pad_masks, att_masks = self.embed_prefix(images, img_masks, lang_tokens, lang_masks, state=state)
        att_2d = make_att_2d_masks(pad_masks, att_masks)
        position_ids = torch.cumsum(pad_masks, dim=1) - 1
        _, cache = self.vlm_with_expert.forward(
            attention_mask=att_2d,
            position_ids=position_ids,
            past_key_values=None,
            inputs_embeds=[prefix_embs, None],
            use_cache=True,
        )
        return cache, pad_masks

    @staticmethod
    def expand_prefix(cache, pad_masks: Tensor, repeats: int):
        """Repeat the prefix `repeats` times along the batch: row b becomes rows b·r .. b·r + r − 1.

        `DynamicCache.batch_repeat_interleave` applies `repeat_interleave(dim=0)` to every layer's
        keys and values (out of place per tensor, so gradients flow back to the single encoding).
        """
        if repeats == 1:
            return cache, pad_masks
        cache.batch_repeat_interleave(repeats)
        return cache, pad_masks.repeat_interleave(repeats, dim=0)

    def repeated_prefix_velocity(self, cache, pad_masks: Tensor, samples: int):
        """v(x_t, t) through SmolVLA's own `denoise_step`, over the prefix repeated `samples` times (the
        training path: gradients flow through the repeated cache back to the one encoding)."""
        cache, pad_masks = self.expand_prefix(cache, pad_masks, samples)
        return lambda x_t, t: self.denoise_step(prefix_pad_masks=pad_masks, past_key_values=cache, x_t=x_t, timestep=t)

    def expert_velocity(self, cache, pad_masks: Tensor, samples: int):
        """v(x_t, t) for `samples` rows per observation over an encoded prefix (inference).

        The shared-prefix pass when the config allows it and the model has it (see shared_prefix.py);
        else the repeated-prefix pass.
        """
        if self.config.shared_prefix_expert and shared_prefix.supported(self):
            velocity = getattr(self, "_compiled_velocity", shared_prefix.velocity)
            return partial(velocity, self, shared_prefix.prepare(self, cache), pad_masks)
        return self.repeated_prefix_velocity(cache, pad_masks, samples)

    def compile_expert(self, mode: str | None = None) -> None:
        """Run the shared-prefix expert pass under `torch.compile` from now on (meant for a GPU, where
        the pass is launch-bound; graph breaks are allowed, so it stays correct where it cannot fuse)."""
        self._compiled_velocity = torch.compile(shared_prefix.velocity, mode=mode, dynamic=False)

    @staticmethod
    def one_step(velocity, noise: Tensor) -> Tensor:
        """chunk = ε − v(ε, t=1): one action-expert pass. noise [N, T, A]."""
        return noise - velocity(noise, torch.ones(noise.shape[0], dtype=torch.float32, device=noise.device))

    def generate(self, images, img_masks, lang_tokens, lang_masks, state, noise: Tensor, samples: int) -> Tensor:
        """`samples` one-step chunks per observation: noise [B·samples, T, A] -> chunks [B·samples, T, A].

        Rows are grouped by observation (row b·samples + j is sample j of observation b).
        """
        cache, pad_masks = self.encode_prefix(images, img_masks, lang_tokens, lang_masks, state)
        return self.one_step(self.repeated_prefix_velocity(cache, pad_masks, samples), noise)

    def make_noise(self, noise: Tensor | None, bsize: int, samples: int, device) -> Tensor:
        """ε of shape [B·samples, T, A]; accepts a given [B·samples, T, A] or [B, samples, T, A]."""
        shape = (bsize * samples, self.config.chunk_size, self.config.max_action_dim)
        if noise is None:
            return self.sample_noise(shape, device)
        noise = noise.reshape(shape) if noise.dim() == 4 else noise
        if tuple(noise.shape) != shape:
            raise ValueError(
                f"noise must have shape {shape} (B·samples, chunk, max_action_dim), got {tuple(noise.shape)}"
            )
        return noise.to(device=device, dtype=torch.float32)

    @torch.no_grad()
    def sample_chunk(self, images, img_masks, lang_tokens, lang_masks, state, noise=None, **rtc_kwargs):
        """One normalised action chunk per observation with the configured sampler.

        Returns (chunk [B, T, A], info, candidates [B, K, T, A] or None). info holds wall times in ms
        (prefix_ms, expert_ms, keystone_ms, total_ms) and, for KeyStone, spread/guard/cluster_size/index
        of the first batch row.
        """
        cfg = self.config
        bsize, device = state.shape[0], state.device
        t0 = _clock(device)
        cache, pad_masks = self.encode_prefix(images, img_masks, lang_tokens, lang_masks, state)
        t1 = _clock(device)
        info: dict = {"sampler": cfg.sampler, "samples": 1, "prefix_ms": (t1 - t0) * 1e3, "keystone_ms": 0.0}

        if cfg.sampler == "flow":
            # SmolVLA's own Euler loop (as in VLAFlowMatching.sample_actions), timed in two parts.
            x0 = euler_integrate(
                self.expert_velocity(cache, pad_masks, 1),
                self.make_noise(noise, bsize, 1, device),
                cfg.num_steps,
                rtc_processor=self.rtc_processor,
                rtc_enabled=self._rtc_enabled(),
                inference_delay=rtc_kwargs.get("inference_delay"),
                prev_chunk_left_over=rtc_kwargs.get("prev_chunk_left_over"),
                execution_horizon=rtc_kwargs.get("execution_horizon"),
            )
            t2 = _clock(device)
            info.update(steps=cfg.num_steps, expert_ms=(t2 - t1) * 1e3, total_ms=(t2 - t0) * 1e3)
            return x0, info, None

        k = cfg.keystone_samples
        eps = self.make_noise(noise, bsize, k, device)
        chunks = self.one_step(self.expert_velocity(cache, pad_masks, k), eps)
        t2 = _clock(device)
        info.update(steps=1, samples=k, expert_ms=(t2 - t1) * 1e3)
        if k == 1:
            info["total_ms"] = (t2 - t0) * 1e3
            return chunks, info, None

        candidates = chunks.view(bsize, k, cfg.chunk_size, cfg.max_action_dim)
        action_dim = cfg.action_feature.shape[0]
        # Padding dims never vote: KeyStone sees only the real action dims.
        index, kinfo = keystone_select(
            flatten_real(candidates, action_dim), clusters=cfg.keystone_clusters, tau=cfg.keystone_tau
        )
        chosen = candidates[torch.arange(bsize, device=device), index]
        t3 = _clock(device)
        info.update(
            keystone_ms=(t3 - t2) * 1e3,
            total_ms=(t3 - t0) * 1e3,
            index=int(index[0]),
            spread=float(kinfo["spread"][0]),
            guard=bool(kinfo["guard_fired"][0]),
            cluster_size=int(kinfo["cluster_size"][0]),
        )
        return chosen, info, candidates
