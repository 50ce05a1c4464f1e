"""Drift-VLA policy: SmolVLA with a one-step drift objective, its loss, and KeyStone selection."""

# Importing the package registers the `smolvla_drift` policy type with LeRobot (draccus choice
# registry); LeRobot's factory then finds the policy class and processors by its naming convention
# (see configuration.py). Only the light config module is imported here: modeling pulls in torch and
# transformers, and loads on first use.
from lekiwi_drift.policy.configuration import SmolVLADriftConfig  # noqa: E402,F401
