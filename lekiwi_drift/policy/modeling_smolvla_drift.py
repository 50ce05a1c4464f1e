"""`SmolVLADriftPolicy`: SmolVLA trained with the drift objective (or stock flow matching).

Training (`forward`):
- objective "flow": SmolVLA's own flow-matching loss, unchanged (the baseline);
- objective "drift": G one-step chunks per observation from one prefix encoding (see generator.py),
  sliced to the real action dims, scored by `drift_loss` against the demonstration chunk; the loss
  diagnostics go into the output dict, which LeRobot's train loop averages and logs.

Inference (`select_action` / `predict_action_chunk`, inherited) goes through `_get_action_chunk`,
which runs the configured sampler and leaves timings and KeyStone diagnostics of the last chunk in
`policy.last_chunk_info` (and the K candidates in `policy.last_candidates`, else None).
"""

from __future__ import annotations

import torch
from lerobot.policies.pretrained import PreTrainedPolicy
from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
from lerobot.utils.constants import ACTION, OBS_LANGUAGE_ATTENTION_MASK, OBS_LANGUAGE_TOKENS
from lerobot.utils.import_utils import require_package
from torch import Tensor

from lekiwi_drift.policy.configuration_smolvla_drift import SmolVLADriftConfig
from lekiwi_drift.policy.drift import drift_loss
from lekiwi_drift.policy.generator import DriftFlowMatching


class SmolVLADriftPolicy(SmolVLAPolicy):
    config_class = SmolVLADriftConfig
    name = "smolvla_drift"

    def __init__(self, config: SmolVLADriftConfig, **kwargs):
        # SmolVLAPolicy.__init__ hard-codes `VLAFlowMatching`; building that and then replacing it
        # would construct the whole VLM twice, so this repeats its five lines with our subclass.
        require_package("transformers", extra="smolvla")
        PreTrainedPolicy.__init__(self, config)
        config.validate_features()
        self.config = config
        self.init_rtc_processor()
        self.model = DriftFlowMatching(config, rtc_processor=self.rtc_processor)
        self.last_chunk_info: dict = {}
        self.last_candidates: Tensor | None = None
        self.reset()

    # ------------------------------------------------------------------ shared pieces
    def _prefix_inputs(self, batch: dict[str, Tensor]):
        images, img_masks = self.prepare_images(batch)
        state = self.prepare_state(batch)
        return images, img_masks, batch[OBS_LANGUAGE_TOKENS], batch[OBS_LANGUAGE_ATTENTION_MASK], state

    @property
    def action_dim(self) -> int:
        return self.config.action_feature.shape[0]

    def one_step_chunks(
        self, batch: dict[str, Tensor], noise: Tensor | None = None, samples: int | None = None
    ) -> Tensor:
        """The one-step generator: [B, samples, T, action_dim] normalised chunks (real dims only).

        This is the function the drift loss trains and the drift sampler deploys. `noise`, if given,
        is [B·samples, T, max_action_dim] or [B, samples, T, max_action_dim]. Runs with grad if enabled.
        """
        samples = samples or self.config.drift_samples
        images, img_masks, lang_tokens, lang_masks, state = self._prefix_inputs(batch)
        bsize = state.shape[0]
        eps = self.model.make_noise(noise, bsize, samples, state.device)
        chunks = self.model.generate(images, img_masks, lang_tokens, lang_masks, state, eps, samples)
        t, a = self.config.chunk_size, self.config.max_action_dim
        return chunks.view(bsize, samples, t, a)[..., : self.action_dim]

    # ------------------------------------------------------------------ training
    def forward(self, batch: dict[str, Tensor], noise=None, time=None, reduction: str = "mean"):
        if self.config.objective == "flow":
            return super().forward(batch, noise=noise, time=time, reduction=reduction)
        if reduction != "mean":
            # The drift loss is defined over groups of matching problems (with shared scale
            # statistics), not per sample, so per-sample weighting (RA-BC) has no meaning here.
            raise ValueError("objective 'drift' supports reduction='mean' only (no per-sample sample weighting)")

        gen = self.one_step_chunks(batch, noise=noise)  # [B, G, T, D]
        demo = batch[ACTION][..., : self.action_dim]
        is_pad = batch.get("action_is_pad")
        loss, info = drift_loss(
            gen,
            demo,
            is_pad=is_pad,
            grouping=self.config.drift_grouping,
            temperatures=self.config.drift_temperatures,
        )
        out = {"loss": loss.item()}
        out.update(self._loggable(info))
        return loss, out

    def _loggable(self, info: dict) -> dict[str, float]:
        """Drift diagnostics as plain floats (LeRobot's MetricsTracker logs int/float values only)."""
        out: dict[str, float] = {}
        for key, value in info.items():
            name = key if key.startswith("drift") else f"drift_{key}"
            if not torch.is_tensor(value):
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    out[name] = float(value)
                continue
            value = value.detach().float()
            if value.numel() == 1:
                out[name] = value.item()
            elif key == "force_rms" and value.numel() == len(self.config.drift_temperatures):
                for temp, x in zip(self.config.drift_temperatures, value.tolist(), strict=True):
                    out[f"{name}_t{temp:g}"] = x
            else:
                out[f"{name}_mean"] = value.mean().item()
        return out

    # ------------------------------------------------------------------ inference
    def _get_action_chunk(self, batch: dict[str, Tensor], noise: Tensor | None = None, **kwargs) -> Tensor:
        # Same observation-queue handling as SmolVLAPolicy._get_action_chunk.
        for k in batch:
            if k in self._queues and k != ACTION:
                batch[k] = torch.stack(list(self._queues[k]), dim=1)
        images, img_masks, lang_tokens, lang_masks, state = self._prefix_inputs(batch)
        chunk, info, candidates = self.model.sample_chunk(
            images, img_masks, lang_tokens, lang_masks, state, noise=noise, **kwargs
        )
        self.last_chunk_info = info
        self.last_candidates = None if candidates is None else candidates[..., : self.action_dim]
        return chunk[:, :, : self.action_dim]
