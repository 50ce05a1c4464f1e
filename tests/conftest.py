"""Shared pytest fixtures. Each part of the project keeps its fixtures in its own marked block."""

from __future__ import annotations

import pytest

# ---------------------------------------------------------------- policy (Drift-VLA) fixtures


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory):
    """A tiny offline SmolVLM directory (config, processor, tokenizer; no weights, no network)."""
    from lekiwi_drift.policy.offline_vlm import write_tiny_smolvlm

    return write_tiny_smolvlm(tmp_path_factory.mktemp("tiny_smolvlm"))


# ---------------------------------------------------------------- end of policy fixtures
