"""A wheel (not an editable install) carries the presets, protocols and quickstart checkpoints, so the
commands work from any directory; a user's own ./policies still wins."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_target(tmp_path_factory):
    """The package built as a wheel and unpacked into a folder that goes first on PYTHONPATH."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            str(ROOT),
            "-w",
            str(out / "dist"),
        ],
        check=True,
        cwd=out,
    )
    wheel = next((out / "dist").glob("lekiwi_drift-*.whl"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(out / "site"), str(wheel)],
        check=True,
    )
    return out / "site"


def run_in(cwd: Path, site: Path, *args: str, timeout: float = 240.0) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site), "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_wheel_runs_the_shipped_policy_and_finds_protocols_from_an_empty_dir(wheel_target, tmp_path):
    where = run_in(
        tmp_path,
        wheel_target,
        "-c",
        "import lekiwi_drift, lekiwi_drift.shipped as s; "
        "print(lekiwi_drift.__file__); print(s.shipped_dir('policies')); print(s.from_checkout())",
    )
    assert where.returncode == 0, where.stderr
    file, policies, checkout = where.stdout.split()
    assert file.startswith(str(wheel_target)) and "_shipped" in policies and checkout == "False"

    proc = run_in(
        tmp_path,
        wheel_target,
        "-m",
        "lekiwi_drift.cli.main",
        "run",
        "--policy",
        "fm1",
        "--sim",
        "--episodes",
        "1",
        "--max-time",
        "1.5",
        "--quiet",
        "--latency",
        "0",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "fm1: 0/1 success" in proc.stdout or "fm1: 1/1 success" in proc.stdout
    assert (tmp_path / "runs").is_dir()  # output goes to the user's directory, never into the package

    found = run_in(
        tmp_path,
        wheel_target,
        "-c",
        "from lekiwi_drift.trials.protocol import resolve_protocol_path as r; "
        "from lekiwi_drift.trials.session import default_sessions_dir as d; "
        "print(r('salt_bottle')); print(r('salt_bottle_sim')); print(d())",
    )
    assert found.returncode == 0, found.stderr
    bottle, bottle_sim, sessions = found.stdout.split()
    assert "_shipped" in bottle and "_shipped" in bottle_sim
    assert Path(sessions) == tmp_path / "trials" / "sessions"


def test_own_presets_win_over_the_shipped_ones(wheel_target, tmp_path):
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "drift.yaml").write_text("checkpoint: my_checkpoint\n")
    proc = run_in(
        tmp_path,
        wheel_target,
        "-c",
        "from lekiwi_drift.control.preset import preset_path; print(preset_path('drift')); print(preset_path('fm10'))",
    )
    assert proc.returncode == 0, proc.stderr
    own, shipped = proc.stdout.split()
    assert Path(own) == tmp_path / "policies" / "drift.yaml" and "_shipped" in shipped
