"""The smolvla_drift policy on the tiny offline VLM: config checks, generator, samplers, checkpoints."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("lerobot.policies.smolvla")

import lekiwi_drift.policy  # noqa: E402,F401  (registers smolvla_drift)
from lekiwi_drift.policy.configuration_smolvla_drift import SmolVLADriftConfig  # noqa: E402

CAMS = ("front", "wrist", "top")
B = 2
T, A_MAX, D = 10, 16, 9  # tiny config: chunk 10, max_action_dim 16, LeKiwi's 9-D action


def make_policy(vlm_dir, **overrides):
    from lekiwi_drift.policy.modeling_smolvla_drift import SmolVLADriftPolicy
    from lekiwi_drift.policy.offline_vlm import make_tiny_policy_config

    torch.manual_seed(0)
    return SmolVLADriftPolicy(make_tiny_policy_config(vlm_dir, **overrides))


def processors(policy):
    from lerobot.policies.factory import make_pre_post_processors

    return make_pre_post_processors(policy.config, dataset_stats=None)


def raw_batch(bsize=B, with_actions=False, seed=1):
    g = torch.Generator().manual_seed(seed)
    batch = {f"observation.images.{c}": torch.rand(bsize, 3, 64, 64, generator=g) for c in CAMS}
    batch["observation.state"] = torch.randn(bsize, 9, generator=g)
    batch["task"] = ["pick up the salt bottle"] * bsize
    if with_actions:
        batch["action"] = torch.randn(bsize, T, D, generator=g)
        pad = torch.zeros(bsize, T, dtype=torch.bool)
        pad[0, 7:] = True  # the first sample's episode ends inside the chunk
        batch["action_is_pad"] = pad
    return batch


def noise(*shape, seed=2):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def tiny_policy(tiny_vlm_dir):
    policy = make_policy(tiny_vlm_dir)
    pre, post = processors(policy)
    return policy, pre, post


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"keystone_samples": 8, "sampler": "flow"}, "KeyStone"),
        ({"drift_samples": 1}, "drift_samples"),
        ({"keystone_samples": 4, "keystone_clusters": 5}, "keystone_clusters"),
        ({"drift_grouping": "per_joint"}, "drift_grouping"),
        ({"objective": "diffusion"}, "objective"),
        ({"sampler": "ddim"}, "sampler"),
        ({"flow_steps": 0}, "flow_steps"),
        ({"drift_temperatures": ()}, "drift_temperatures"),
        ({"use_cache": False}, "use_cache"),
    ],
)
def test_invalid_config_is_rejected_with_a_clear_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SmolVLADriftConfig(device="cpu", **kwargs)


def test_valid_config_defaults_and_flow_steps():
    cfg = SmolVLADriftConfig(device="cpu", sampler="flow", flow_steps=1)
    assert cfg.type == "smolvla_drift"
    assert (cfg.objective, cfg.drift_grouping, cfg.drift_samples) == ("drift", "action_dim", 8)
    assert cfg.drift_temperatures == (0.02, 0.05, 0.2)
    assert cfg.num_steps == 1  # SmolVLA's Euler loop follows flow_steps
    # G=1 is fine for the flow baseline (no sibling repulsion involved).
    SmolVLADriftConfig(device="cpu", objective="flow", drift_samples=1)


def test_lerobot_factory_resolves_our_type(tiny_vlm_dir):
    # LeRobot's own factory, by name, with nothing patched: the type gives the config class, the
    # config's module (configuration_smolvla_drift) gives modeling_ / processor_smolvla_drift.
    from lerobot.policies.factory import get_policy_class, make_policy_config, make_pre_post_processors
    from lerobot.policies.smolvla.processor_smolvla import make_smolvla_pre_post_processors

    from lekiwi_drift.policy.modeling_smolvla_drift import SmolVLADriftPolicy
    from lekiwi_drift.policy.offline_vlm import make_tiny_policy_config

    assert get_policy_class("smolvla_drift") is SmolVLADriftPolicy
    assert SmolVLADriftPolicy.__module__ == "lekiwi_drift.policy.modeling_smolvla_drift"
    assert type(make_policy_config("smolvla_drift", device="cpu")) is SmolVLADriftConfig
    cfg = make_tiny_policy_config(tiny_vlm_dir)
    ours = make_pre_post_processors(cfg, dataset_stats=None)
    stock = make_smolvla_pre_post_processors(cfg, dataset_stats=None)
    for got, want in zip(ours, stock, strict=True):
        assert [type(step) for step in got.steps] == [type(step) for step in want.steps]


def test_lerobot_plugin_flag_registers_our_type_in_a_fresh_process():
    # What LeRobot's own scripts do with `--policy.discover_packages_path=lekiwi_drift.policy`: the
    # import alone registers the type; nothing else of ours runs first.
    code = (
        "from lerobot.configs.parser import load_plugin; load_plugin('lekiwi_drift.policy'); "
        "from lerobot.policies.factory import get_policy_class; "
        "print(get_policy_class('smolvla_drift').__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("lekiwi_drift.policy.modeling_smolvla_drift")


def test_the_recorder_writes_the_image_keys_the_policy_reads():
    # The recorder spells the prefix out to stay torch-free; it must stay LeRobot's.
    from lekiwi_drift.policy.checkpoint import IMAGE_PREFIX
    from lekiwi_drift.record.recorder import IMAGE_PREFIX as RECORDED

    assert RECORDED == IMAGE_PREFIX == "observation.images."


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"sampler": "ddim"}, "sampler"),
        ({"flow_steps": 0}, "flow_steps"),
        ({"keystone_samples": 0}, "keystone_samples"),
        ({"keystone_samples": 8, "sampler": "flow"}, "keystone_samples"),
        ({"keystone_samples": 4, "keystone_clusters": 5}, "keystone_clusters"),
        ({"keystone_tau": -0.1}, "keystone_tau"),
    ],
)
def test_preset_and_config_apply_the_same_sampler_rules(tmp_path, fields, name):
    from lekiwi_drift.config.robot import ConfigError
    from lekiwi_drift.control.preset import load_preset

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"checkpoint": "x", **fields}))
    with pytest.raises(ConfigError, match=rf"bad\.yaml: {name}: "):
        load_preset(path)
    with pytest.raises(ValueError, match=rf"{name}: "):
        SmolVLADriftConfig(device="cpu", **fields)


def test_tiny_policy_size(tiny_policy):
    policy, _, _ = tiny_policy
    n = sum(p.numel() for p in policy.parameters())
    assert 0.35e6 < n < 0.5e6  # docs/design.md#training-and-loading


# ---------------------------------------------------------------- generator and training


def test_one_step_generator_shape(tiny_policy):
    policy, pre, _ = tiny_policy
    batch = pre(raw_batch())
    with torch.no_grad():
        chunks = policy.one_step_chunks(batch, samples=3)
    assert chunks.shape == (B, 3, T, D)
    assert torch.isfinite(chunks).all()


def test_drift_forward_logs_diagnostics_and_trains_through_the_cache(tiny_policy):
    policy, pre, _ = tiny_policy
    policy.train()
    policy.zero_grad()
    loss, out = policy.forward(pre(raw_batch(with_actions=True)))
    loss.backward()
    assert torch.isfinite(loss)
    assert out["loss"] == pytest.approx(loss.item())
    assert {"drift_energy", "drift_centroid_mse", "drift_sample_var", "drift_force_rms_t0.02"} <= set(out)
    assert all(isinstance(v, float) for v in out.values())
    # The prefix (state projection) learns through the repeated KV cache; the expert learns too.
    assert policy.model.state_proj.weight.grad.abs().sum() > 0
    assert policy.model.action_out_proj.weight.grad.abs().sum() > 0
    policy.zero_grad()
    policy.eval()


def test_flow_objective_uses_the_stock_loss(tiny_vlm_dir):
    policy = make_policy(tiny_vlm_dir, objective="flow")
    pre, _ = processors(policy)
    loss, out = policy.forward(pre(raw_batch(with_actions=True)))
    assert torch.isfinite(loss) and "losses_after_forward" in out


def test_training_generator_is_the_deployed_function(tiny_policy):
    policy, pre, _ = tiny_policy
    batch = pre(raw_batch())
    eps = noise(B, 1, T, A_MAX)
    policy.train()
    with torch.no_grad():
        trained = policy.one_step_chunks(batch, noise=eps, samples=1)[:, 0]
    policy.eval()
    policy.reset()
    deployed = policy.predict_action_chunk(batch, noise=eps[:, 0])
    torch.testing.assert_close(deployed, trained, rtol=1e-5, atol=1e-5)
    # The parametrisation chunk = eps - v(eps, t=1) is one Euler step of flow matching: FM-1 agrees.
    policy.config.sampler, policy.config.flow_steps = "flow", 1
    policy.config.validate()
    try:
        fm1 = policy.predict_action_chunk(batch, noise=eps[:, 0])
    finally:
        policy.config.sampler, policy.config.flow_steps = "drift", 10
        policy.config.validate()
    torch.testing.assert_close(fm1, trained, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- samplers


def test_keystone_returns_one_of_the_candidates(tiny_vlm_dir):
    policy = make_policy(tiny_vlm_dir, keystone_samples=6, keystone_clusters=3)
    pre, _ = processors(policy)
    batch = pre(raw_batch())
    eps = noise(B, 6, T, A_MAX)
    chosen = policy.predict_action_chunk(batch, noise=eps)
    cands = policy.last_candidates
    assert chosen.shape == (B, T, D) and cands.shape == (B, 6, T, D)
    for b in range(B):
        matches = [k for k in range(6) if torch.equal(cands[b, k], chosen[b])]
        assert matches, "KeyStone must return one of the K samples, never an average"
    # The K candidates are the one-step generator's samples for the same noise.
    with torch.no_grad():
        direct = policy.one_step_chunks(batch, noise=eps, samples=6)
    torch.testing.assert_close(cands, direct, rtol=1e-5, atol=1e-5)
    info = policy.last_chunk_info
    assert info["samples"] == 6 and info["index"] in range(6)
    assert {"prefix_ms", "expert_ms", "keystone_ms", "spread", "guard"} <= set(info)


@pytest.mark.parametrize("steps", [1, 10])
def test_flow_sampler_runs(tiny_vlm_dir, steps):
    policy = make_policy(tiny_vlm_dir, sampler="flow", flow_steps=steps)
    pre, post = processors(policy)
    obs = raw_batch(bsize=1)
    obs["task"] = obs["task"][0]
    action = post(policy.select_action(pre(obs)))
    assert action.shape == (1, D) and torch.isfinite(action).all()
    assert policy.last_chunk_info["sampler"] == "flow" and policy.last_chunk_info["steps"] == steps


# ---------------------------------------------------------------- checkpoints


LOC, SCALE = np.linspace(-40.0, 40.0, D), np.linspace(0.5, 12.0, D)


def recorded_stats(root):
    """LeRobot's normalisation stats of a small dataset written by our recorder, as training takes them
    (`dataset.meta.stats`): each state and action channel has its own mean (-40..40) and spread (0.5..12)."""
    from lerobot.datasets import LeRobotDataset

    from lekiwi_drift.record.recorder import EpisodeRecorder, RecorderConfig

    rng = np.random.default_rng(0)
    rec = EpisodeRecorder(RecorderConfig(root=root, task="pick"), {c: (24, 32) for c in CAMS}).open()
    for _ in range(40):
        images = {c: rng.integers(0, 255, (24, 32, 3), dtype=np.uint8) for c in CAMS}
        rec.add(rng.normal(LOC, SCALE), images, rng.normal(-LOC, SCALE))
    rec.save_episode()
    rec.close()
    return LeRobotDataset(f"local/{root.name}", root=root).meta.stats


def test_save_load_round_trip_carries_the_normalisation_stats(tiny_policy, tiny_vlm_dir, tmp_path):
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.processor import NormalizerProcessorStep, UnnormalizerProcessorStep

    from lekiwi_drift.policy.checkpoint import load_policy, robot_features

    policy, _, _ = tiny_policy
    stats = recorded_stats(tmp_path / "demos")
    for key in ("observation.state", "action"):  # far from the identity (mean 0, std 1)
        assert np.abs(stats[key]["mean"]).max() > 20 and np.abs(np.log(stats[key]["std"])).max() > 1
    pre, post = make_pre_post_processors(policy.config, dataset_stats=stats)
    for part in (policy, pre, post):
        part.save_pretrained(tmp_path / "ckpt")
    loaded, pre2, post2 = load_policy(
        tmp_path / "ckpt", robot_features=robot_features(list(CAMS)), vlm_dir=tiny_vlm_dir
    )
    [norm] = [step for step in pre2.steps if isinstance(step, NormalizerProcessorStep)]
    [unnorm] = [step for step in post2.steps if isinstance(step, UnnormalizerProcessorStep)]
    for step, keys in ((norm, ("observation.state", "action")), (unnorm, ("action",))):
        assert set(keys) <= set(step.stats), f"{type(step).__name__} reloaded without stats for {keys}"
        for key in keys:
            for stat in ("mean", "std"):
                np.testing.assert_allclose(np.asarray(step.stats[key][stat]), stats[key][stat], rtol=1e-6)
    # Normalise an action with the reloaded preprocessor (by the dataset's stats, not the identity), then
    # unnormalise it with the reloaded postprocessor: the action comes back.
    actions = torch.from_numpy(np.random.default_rng(3).normal(-LOC, SCALE, (B, T, D)).astype(np.float32))
    normed = pre2({**raw_batch(), "action": actions})["action"]
    mean, std = (torch.as_tensor(stats["action"][s], dtype=torch.float32) for s in ("mean", "std"))
    torch.testing.assert_close(normed, (actions - mean) / std, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(post2(normed), actions, rtol=1e-5, atol=1e-4)
    # And the reloaded policy acts exactly like the saved one.
    eps = noise(B, T, A_MAX, seed=5)
    policy.reset()
    a1 = post(policy.predict_action_chunk(pre(raw_batch()), noise=eps))
    a2 = post2(loaded.predict_action_chunk(pre2(raw_batch()), noise=eps))
    torch.testing.assert_close(a2, a1, rtol=0, atol=1e-6)


def test_checkpoint_robot_mismatch_names_the_camera(tiny_policy, tiny_vlm_dir, tmp_path):
    from lekiwi_drift.policy.checkpoint import PolicyMismatchError, load_policy, robot_features

    policy, _, _ = tiny_policy
    policy.save_pretrained(tmp_path)
    with pytest.raises(PolicyMismatchError, match=r"cameras \[front, wrist, top\] but the robot has \[front, wrist\]"):
        load_policy(tmp_path, robot_features=robot_features(["front", "wrist"]), vlm_dir=tiny_vlm_dir)
    with pytest.raises(PolicyMismatchError, match=r"state shape \(9,\) but the robot has \(6,\)"):
        load_policy(tmp_path, robot_features=robot_features(list(CAMS), state_dim=6), vlm_dir=tiny_vlm_dir)
