"""`smolvla_drift`: SmolVLA with a switchable training objective and inference sampler.

One architecture, checkpoint layout and processor set for both arms of the comparison:
`objective="flow"` is stock SmolVLA flow matching (the FM-10 / FM-1 baseline), `objective="drift"` trains
the one-step generator with the drift loss. At inference, `sampler="drift"` runs one expert pass
(optionally KeyStone over `keystone_samples` candidates), `sampler="flow"` runs SmolVLA's Euler loop
with `flow_steps` steps.

How LeRobot finds the rest (lerobot 0.6.1, `lerobot/policies/factory.py`): `get_policy_class` and
`make_pre_post_processors` take this class's module path, replace "configuration_" by "modeling_" /
"processor_" and import `SmolVLADriftPolicy` / `make_smolvla_drift_pre_post_processors` from it. Our
module is named `configuration` (no underscore suffix), so both lookups land on *this* module; the
module-level `__getattr__` at the bottom resolves those two names lazily from `modeling.py` and
`processor.py`. That is LeRobot's documented plugin path, with no change to lerobot itself, and it
keeps torch/transformers-heavy imports out of config parsing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lerobot.configs import PreTrainedConfig
from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig

OBJECTIVES = ("drift", "flow")
GROUPINGS = ("action_dim", "chunk", "timestep")
SAMPLERS = ("drift", "flow")


@PreTrainedConfig.register_subclass("smolvla_drift")
@dataclass
class SmolVLADriftConfig(SmolVLAConfig):
    # Training objective: "drift" (one-step generator + drift loss) or "flow" (stock flow matching).
    objective: str = "drift"
    # How the drift loss groups matching problems: per action dimension (the paper's winner), one
    # group per whole chunk, or one group per chunk timestep.
    drift_grouping: str = "action_dim"
    # G: live samples per observation in training (the prefix is encoded once and repeated G times).
    drift_samples: int = 8
    drift_temperatures: tuple[float, ...] = field(default_factory=lambda: (0.02, 0.05, 0.2))

    # Inference: "drift" = one expert pass at t=1; "flow" = Euler integration with `flow_steps` steps
    # (10 = the FM-10 baseline, 1 = truncated FM-1, which equals the drift sampler's function).
    sampler: str = "drift"
    flow_steps: int = 10
    # KeyStone (drift sampler only): K candidates from one batched expert pass; 1 = off.
    keystone_samples: int = 1
    keystone_clusters: int = 4
    keystone_tau: float = 0.3
    # Inference: expert passes read the encoded prefix once, shared by all K candidates / Euler steps,
    # instead of SmolVLA's per-pass repeat and re-projection (policy/shared_prefix.py). Same outputs up
    # to float summation order; False runs SmolVLA's `denoise_step` as is.
    shared_prefix_expert: bool = True
    # Encode all cameras in one vision-tower call (same tokens; float-level differences only). Matters on
    # a GPU (one launch sequence instead of one per camera); on a CPU it is the same work.
    batch_vision: bool = True

    def __post_init__(self):
        super().__post_init__()
        self.drift_temperatures = tuple(float(t) for t in self.drift_temperatures)
        problems = self._problems()
        if problems:
            raise ValueError("Invalid smolvla_drift config: " + "; ".join(problems))
        # SmolVLA's Euler loop reads `num_steps`; `flow_steps` is the one knob users set.
        self.num_steps = self.flow_steps

    def _problems(self) -> list[str]:
        p: list[str] = []
        if self.objective not in OBJECTIVES:
            p.append(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.drift_grouping not in GROUPINGS:
            p.append(f"drift_grouping must be one of {GROUPINGS}, got {self.drift_grouping!r}")
        if self.sampler not in SAMPLERS:
            p.append(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.objective == "drift" and self.drift_samples < 2:
            p.append(
                f"drift_samples (G) must be >= 2 with objective 'drift' (the loss repels siblings), "
                f"got {self.drift_samples}"
            )
        if not self.drift_temperatures or any(t <= 0 for t in self.drift_temperatures):
            p.append(f"drift_temperatures must be a non-empty list of positive numbers, got {self.drift_temperatures}")
        if self.flow_steps < 1:
            p.append(f"flow_steps must be >= 1, got {self.flow_steps}")
        if self.keystone_samples < 1:
            p.append(f"keystone_samples (K) must be >= 1 (1 = KeyStone off), got {self.keystone_samples}")
        if self.keystone_samples > 1:
            if self.sampler != "drift":
                p.append(
                    f"KeyStone (keystone_samples={self.keystone_samples}) needs sampler 'drift'; "
                    f"it selects among one-step samples, not flow integrations (sampler={self.sampler!r})"
                )
            if not 1 <= self.keystone_clusters <= self.keystone_samples:
                p.append(
                    f"keystone_clusters must be between 1 and keystone_samples ({self.keystone_samples}), "
                    f"got {self.keystone_clusters}"
                )
        if self.keystone_tau < 0:
            p.append(f"keystone_tau must be >= 0, got {self.keystone_tau}")
        if not self.use_cache:
            # The one-step generator encodes the prefix once and reads it back from the KV cache.
            p.append("use_cache must be True (the prefix is encoded once into the KV cache)")
        if self.adapt_to_pi_aloha:
            p.append("adapt_to_pi_aloha is an ALOHA-specific SmolVLA option and is not supported here")
        rtc_on = self.rtc_config is not None and self.rtc_config.enabled
        if rtc_on and self.sampler != "flow":
            p.append("real-time chunking (rtc_config) guides an Euler loop: it needs sampler 'flow'")
        return p

    def validate(self) -> None:
        """Re-check after fields were changed on a live config (e.g. by a preset or a loader)."""
        problems = self._problems()
        if problems:
            raise ValueError("Invalid smolvla_drift config: " + "; ".join(problems))
        self.num_steps = self.flow_steps


def __getattr__(name: str):
    # PEP 562 lazy attributes: LeRobot's factory resolves the policy class and processor factory from
    # this module by naming convention (see the module docstring).
    if name == "SmolVLADriftPolicy":
        from lekiwi_drift.policy.modeling import SmolVLADriftPolicy

        return SmolVLADriftPolicy
    if name == "make_smolvla_drift_pre_post_processors":
        from lekiwi_drift.policy.processor import make_smolvla_drift_pre_post_processors

        return make_smolvla_drift_pre_post_processors
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
