"""Drift-VLA policy: SmolVLA with a one-step drift objective, its loss, and KeyStone selection."""

# Importing the package registers the `smolvla_drift` policy type with LeRobot (draccus choice
# registry); LeRobot's factory then finds the policy class and processors by its naming convention
# (configuration_/modeling_/processor_smolvla_drift, see configuration_smolvla_drift.py). Only the
# config module is imported here: the factory imports modeling and processors on first use.
from lekiwi_drift.policy.configuration_smolvla_drift import SmolVLADriftConfig  # noqa: E402,F401
