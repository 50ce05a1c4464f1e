"""Shared pytest fixtures. Each part of the project keeps its fixtures in its own marked block."""

from __future__ import annotations

import os

import pytest

# No test may reach a model hub (there is none here). Offline, an accidental download fails at once
# instead of waiting on a network that drops packets; the commands the tests start inherit it.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# ---------------------------------------------------------------- policy (Drift-VLA) fixtures


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory):
    """A tiny offline SmolVLM directory (config, processor, tokenizer; no weights, no network)."""
    from lekiwi_drift.policy.offline_vlm import write_tiny_smolvlm

    return write_tiny_smolvlm(tmp_path_factory.mktemp("tiny_smolvlm"))


# ---------------------------------------------------------------- end of policy fixtures
