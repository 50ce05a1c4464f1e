"""Pre/post-processors for `smolvla_drift`: exactly SmolVLA's steps.

Drift-VLA changes only the training objective and the sampler, so observations are renamed,
batched, tokenised (with the VLM's tokenizer) and normalised, and actions unnormalised, exactly as
for SmolVLA. Saved pipelines therefore load with LeRobot's own `PolicyProcessorPipeline.from_pretrained`.

LeRobot's `make_pre_post_processors(cfg)` finds `make_smolvla_drift_pre_post_processors` here by its
naming convention (configuration_smolvla_drift -> processor_smolvla_drift; see that module's docstring).
"""

from __future__ import annotations

from typing import Any

import torch
from lerobot.policies.smolvla.processor_smolvla import make_smolvla_pre_post_processors

from lekiwi_drift.policy.configuration_smolvla_drift import SmolVLADriftConfig


def make_smolvla_drift_pre_post_processors(
    config: SmolVLADriftConfig,
    dataset_stats: dict[str, dict[str, torch.Tensor]] | None = None,
) -> tuple[Any, Any]:
    """(preprocessor, postprocessor) for a `smolvla_drift` config; SmolVLA's pipelines unchanged."""
    return make_smolvla_pre_post_processors(config, dataset_stats=dataset_stats)
