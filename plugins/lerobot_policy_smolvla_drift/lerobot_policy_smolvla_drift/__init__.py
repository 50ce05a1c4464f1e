"""LeRobot plugin: importing this registers the `smolvla_drift` policy type (lekiwi_drift.policy).

LeRobot's scripts import it by distribution name (`register_third_party_plugins`) before they parse
`--policy.type` / `--policy.path`; the factory then finds the policy class and its processors next to
the config class (configuration_/modeling_/processor_smolvla_drift).
"""

from lekiwi_drift.policy import SmolVLADriftConfig

__all__ = ["SmolVLADriftConfig"]
