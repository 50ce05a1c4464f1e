"""`smolvla_drift`: SmolVLA with a switchable training objective and inference sampler.

One architecture, checkpoint layout and processor set for both arms of the comparison:
`objective="flow"` is stock SmolVLA flow matching (the FM-10 / FM-1 baseline), `objective="drift"` trains
the one-step generator with the drift loss. At inference, `sampler="drift"` runs one expert pass
(optionally KeyStone over `keystone_samples` candidates), `sampler="flow"` runs SmolVLA's Euler loop
with `flow_steps` steps.

How LeRobot 0.6.1 finds this policy (`lerobot/policies/factory.py`), with no shim:
- the type: `@PreTrainedConfig.register_subclass("smolvla_drift")` below adds this class to draccus'
  choice registry when this module is imported: `import lekiwi_drift.policy` (our CLI, loader and tests
  do this). LeRobot's own scripts import it through the plugin distribution
  `lerobot_policy_smolvla_drift` (plugins/, installed by the README's install command): 0.6.1's
  `register_third_party_plugins` imports every installed distribution named `lerobot_policy_*`.
  Then `make_policy_config("smolvla_drift")` returns this class.
- the policy class: `get_policy_class` drops "Config" from the class name (+ "Policy") and swaps
  "configuration_" for "modeling_" in this module's path: `modeling_smolvla_drift.SmolVLADriftPolicy`.
- the processors: `make_pre_post_processors` swaps "configuration_" for "processor_" and calls
  `make_<type>_pre_post_processors`: `processor_smolvla_drift.make_smolvla_drift_pre_post_processors`.
The modeling and processor modules are imported only by those lookups, so parsing a config stays light.

The sampler/KeyStone rules live here once (`sampler_problems`): the config's `validate()` and the
run presets (control/preset.py) both apply them, each wording the error for its own reader.
"""

from __future__ import annotations

from dataclasses import dataclass

from lerobot.configs import PreTrainedConfig
from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig

from lekiwi_drift.policy.drift import DEFAULT_TEMPERATURES, GROUPINGS

OBJECTIVES = ("drift", "flow")
SAMPLERS = ("drift", "flow")


def sampler_problems(
    sampler: str, flow_steps: int, keystone_samples: int, keystone_clusters: int, keystone_tau: float
) -> list[tuple[str, str]]:
    """(field, problem) for every broken inference-sampler rule, in the order a reader should fix them.

    The field is the name shared by the config and a preset, so each caller can say where to fix it.
    """
    p: list[tuple[str, str]] = []
    if sampler not in SAMPLERS:
        p.append(("sampler", f"{sampler!r} is not one of {SAMPLERS}"))
    if flow_steps < 1:
        p.append(("flow_steps", f"{flow_steps} must be >= 1"))
    if keystone_samples < 1:
        p.append(("keystone_samples", f"{keystone_samples} must be >= 1 (1 = KeyStone off)"))
    if keystone_samples > 1:
        if sampler != "drift":
            p.append(
                (
                    "keystone_samples",
                    f"{keystone_samples} needs sampler 'drift', not {sampler!r}: KeyStone "
                    "selects among one-step samples, not flow integrations; set sampler to drift or "
                    "keystone_samples to 1",
                )
            )
        if not 1 <= keystone_clusters <= keystone_samples:
            p.append(
                (
                    "keystone_clusters",
                    f"{keystone_clusters} must be between 1 and keystone_samples ({keystone_samples})",
                )
            )
    if keystone_tau < 0:
        p.append(("keystone_tau", f"{keystone_tau} must be >= 0"))
    return p


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
    # Softmax temperatures of the drift field; the drift maths (drift.py) owns the default.
    drift_temperatures: tuple[float, ...] = DEFAULT_TEMPERATURES

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
        self.validate()

    def _problems(self) -> list[str]:
        p: list[str] = []
        if self.objective not in OBJECTIVES:
            p.append(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.drift_grouping not in GROUPINGS:
            p.append(f"drift_grouping must be one of {GROUPINGS}, got {self.drift_grouping!r}")
        if self.objective == "drift" and self.drift_samples < 2:
            p.append(
                f"drift_samples (G) must be >= 2 with objective 'drift' (the loss repels siblings), "
                f"got {self.drift_samples}"
            )
        if not self.drift_temperatures or any(t <= 0 for t in self.drift_temperatures):
            p.append(f"drift_temperatures must be a non-empty list of positive numbers, got {self.drift_temperatures}")
        p += [
            f"{name}: {problem}"
            for name, problem in sampler_problems(
                self.sampler, self.flow_steps, self.keystone_samples, self.keystone_clusters, self.keystone_tau
            )
        ]
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
        """Check every field; run at construction and again after fields were changed on a live config
        (e.g. by a preset or a loader)."""
        problems = self._problems()
        if problems:
            raise ValueError("Invalid smolvla_drift config: " + "; ".join(problems))
        # SmolVLA's Euler loop reads `num_steps`; `flow_steps` is the one knob users set.
        self.num_steps = self.flow_steps
