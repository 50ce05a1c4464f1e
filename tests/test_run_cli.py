"""`lekiwi-drift run` end to end with the shipped quickstart checkpoint (offline, lockstep sim)."""

from __future__ import annotations

import json

import pytest


def test_shipped_presets_load_their_checkpoints_offline():
    from lekiwi_drift.config.robot import load_config
    from lekiwi_drift.control.preset import load_preset
    from lekiwi_drift.control.runtime import PolicyRuntime

    cfg = load_config(None)
    for name, objective, sampler in (("drift", "drift", "drift"), ("fm10", "flow", "flow")):
        rt = PolicyRuntime.load(load_preset(name), cfg, warmup=False)
        c = rt.policy.config
        assert (c.objective, c.sampler, rt.chunk_size, rt.n_action_steps) == (objective, sampler, 20, 20)
        assert len(rt.checkpoint_hash) == 12
    assert rt.policy.config.flow_steps == 10


def test_run_without_a_robot_starts_the_sim(tmp_path, monkeypatch, capsys):
    from lekiwi_drift.cli.main import main

    monkeypatch.chdir(tmp_path)  # no ./lekiwi.yaml here
    rc = main(
        [
            "run",
            "--policy",
            "drift1",
            "--max-time",
            "1.5",
            "--episodes",
            "2",
            "--seed",
            "5",
            "--mode",
            "sync",
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "no robot configured" in out and "starting the simulated LeKiwi" in out
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1
    summary = json.loads((runs[0] / "run.json").read_text())
    assert summary["preset"] == "drift1" and summary["mode"] == "sync" and len(summary["episodes"]) == 2
    assert all(e["outcome"] in ("timeout", "success") for e in summary["episodes"])
    lines = (runs[0] / "telemetry.jsonl").read_text().splitlines()
    assert sum(json.loads(line)["kind"] == "episode" for line in lines) == 2


def test_bad_preset_is_a_config_error(tmp_path, capsys):
    from lekiwi_drift.cli.main import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("checkpoint: x\nmode: turbo\n")
    assert main(["run", "--policy", str(bad)]) == 2
    assert "mode" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--episodes", "0"], ["--max-time", "0"]])
def test_bad_arguments(argv, capsys):
    from lekiwi_drift.cli.main import main

    assert main(["run", "--policy", "drift", *argv]) == 2
