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


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_vlm_dir):
    """A random tiny smolvla_drift checkpoint in LeRobot's layout: ROOT/model (control loop and sim-time tests)."""
    import torch
    from lerobot.policies.factory import make_pre_post_processors

    from lekiwi_drift.policy.modeling_smolvla_drift import SmolVLADriftPolicy
    from lekiwi_drift.policy.offline_vlm import make_tiny_policy_config

    torch.manual_seed(0)
    policy = SmolVLADriftPolicy(make_tiny_policy_config(tiny_vlm_dir))
    pre, post = make_pre_post_processors(policy.config, dataset_stats=None)
    root = tmp_path_factory.mktemp("ckpt")
    for part in (policy, pre, post):
        part.save_pretrained(root / "model")
    return root


# ---------------------------------------------------------------- end of policy fixtures


# ---------------------------------------------------------------- process hygiene


@pytest.fixture(autouse=True)
def _no_real_time_leak():
    """Every command a test starts inherits the test process's scheduling policy. A test that leaves the
    main thread real-time (SVT-AV1 run as root does that to the thread that encodes a LeRobot video:
    lekiwi_drift/record/thread_policy.py) would run every later subprocess real-time, where two busy
    threads own both cores and starve everything else, this process included: the intermittent hang of
    tests/test_trials_e2e.py. Restore the policy and fail the test that changed it."""
    from lekiwi_drift.record.thread_policy import describe, thread_scheduling

    before = thread_scheduling()
    yield
    after = thread_scheduling()
    if after != before:
        os.sched_setscheduler(0, before[0], os.sched_param(before[1]))
        pytest.fail(
            f"this test left the test process's main thread at {describe(after)} (it was {describe(before)}); "
            "wrap the video encode in record.thread_policy.keep_thread_scheduling()"
        )


# ---------------------------------------------------------------- end of process hygiene
