"""The models `bench latency` times: our `smolvla_drift` policy and LeRobot's stock `SmolVLAPolicy`
with the very same weights, plus one preprocessed observation.

Full size: the published SmolVLM2-500M shapes (random weights, `write_full_smolvlm`) under SmolVLA's
default policy shapes (16 VLM layers, expert width 0.75, chunk 50, 512x512 padded images, 48 language
tokens). Tiny: the test VLM (`write_tiny_smolvlm`, chunk 10), for the end-to-end test.

The stock policy is built from an equivalent `SmolVLAConfig` (every shared field copied from ours) and
gets our state dict with `assign=True`: both policies then hold the same parameter tensors, so the
comparison is weight-for-weight and the second model costs no extra memory.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import torch

CAMERAS = ("front", "wrist", "top", "cam4", "cam5", "cam6")
STATE_DIM = ACTION_DIM = 9


def default_vlm_dir(tiny: bool) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lekiwi_drift"
    return base / ("smolvlm_tiny" if tiny else "smolvlm2_500m_shapes")


def ensure_vlm_dir(path: Path, tiny: bool) -> Path:
    """Write the offline SmolVLM dir once; later runs reuse it (it holds config + tokenizer only)."""
    from lekiwi_drift.policy.offline_vlm import write_full_smolvlm, write_tiny_smolvlm

    if not (path / "lekiwi_drift_vlm.json").exists():
        (write_tiny_smolvlm if tiny else write_full_smolvlm)(path)
    return path


def make_config(vlm_dir: Path, tiny: bool, cameras: int, height: int, width: int, device: str):
    """Our `SmolVLADriftConfig` for the bench: LeKiwi features (cameras at height x width, 9-D)."""
    from lerobot.configs import FeatureType, PolicyFeature

    from lekiwi_drift.policy.configuration_smolvla_drift import SmolVLADriftConfig
    from lekiwi_drift.policy.offline_vlm import make_tiny_policy_config

    if cameras > len(CAMERAS):
        raise SystemExit(f"--cameras: at most {len(CAMERAS)}")
    inputs = {
        f"observation.images.{c}": PolicyFeature(type=FeatureType.VISUAL, shape=(3, height, width))
        for c in CAMERAS[:cameras]
    }
    inputs["observation.state"] = PolicyFeature(type=FeatureType.STATE, shape=(STATE_DIM,))
    outputs = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(ACTION_DIM,))}
    if tiny:
        return make_tiny_policy_config(vlm_dir, input_features=inputs, output_features=outputs, device=device)
    return SmolVLADriftConfig(
        vlm_model_name=str(vlm_dir),
        load_vlm_weights=False,
        input_features=inputs,
        output_features=outputs,
        device=device,
        push_to_hub=False,
    )


def stock_config(ours):
    """An equivalent stock `SmolVLAConfig`: every field SmolVLAConfig has, copied from ours."""
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig

    names = {f.name for f in dataclasses.fields(SmolVLAConfig) if f.init}
    return SmolVLAConfig(**{n: getattr(ours, n) for n in names})


def cast_backbone(policy, dtype: torch.dtype) -> None:
    """Put the VLM and the action expert in `dtype`; the small state/action/time projections stay fp32.

    SmolVLA's own code expects exactly this split (it upcasts the expert output to fp32 before
    `action_out_proj`, and casts hidden states to each layer's weight dtype), as when it loads the
    pretrained VLM in bf16.
    """
    if dtype != torch.float32:
        policy.model.vlm_with_expert.to(dtype=dtype)


def build_policies(cfg, dtype: torch.dtype):
    """(ours, stock) on cfg.device, eval mode, sharing one set of weights."""
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy

    from lekiwi_drift.policy.modeling_smolvla_drift import SmolVLADriftPolicy

    torch.manual_seed(0)
    ours = SmolVLADriftPolicy(cfg)
    cast_backbone(ours, dtype)
    ours.to(cfg.device).eval()
    stock = SmolVLAPolicy(stock_config(cfg))
    missing, unexpected = stock.load_state_dict(ours.state_dict(), strict=True, assign=True)
    assert not missing and not unexpected  # strict=True raises first; kept for the reader
    stock.to(cfg.device).eval()
    return ours, stock


def make_batch(policy, cameras: int, height: int, width: int, seed: int = 0) -> dict:
    """One preprocessed observation (batch 1) through the policy's own preprocessor."""
    from lerobot.policies.factory import make_pre_post_processors

    pre, _ = make_pre_post_processors(policy.config, dataset_stats=None)
    g = torch.Generator().manual_seed(seed)
    raw = {f"observation.images.{c}": torch.rand(1, 3, height, width, generator=g) for c in CAMERAS[:cameras]}
    raw["observation.state"] = torch.randn(1, STATE_DIM, generator=g)
    raw["task"] = ["pick up the salt bottle and place it in the basket"]
    return pre(raw)


def sync(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


class StockTimer:
    """Splits a stock `SmolVLAPolicy` chunk into prefix and expert time without changing what runs.

    Instance attributes shadow `sample_actions` and `denoise_step` with timing wrappers that call the
    original bound methods (stock `sample_actions` calls `self.denoise_step` through a lambda, so the
    wrapper sees every Euler step). expert = sum of denoise steps; prefix = sample_actions - expert.
    """

    def __init__(self, model, device: torch.device):
        self.device, self.expert_s, self.sample_s = device, 0.0, 0.0
        orig_sample, orig_step = model.sample_actions, model.denoise_step

        def denoise_step(*args, **kwargs):
            t0 = sync(self.device)
            out = orig_step(*args, **kwargs)
            self.expert_s += sync(self.device) - t0
            return out

        def sample_actions(*args, **kwargs):
            t0 = sync(self.device)
            out = orig_sample(*args, **kwargs)
            self.sample_s += sync(self.device) - t0
            return out

        model.denoise_step, model.sample_actions = denoise_step, sample_actions

    def reset(self) -> None:
        self.expert_s = self.sample_s = 0.0

    def split_ms(self) -> tuple[float, float]:
        return (self.sample_s - self.expert_s) * 1e3, self.expert_s * 1e3
