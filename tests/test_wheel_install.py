"""A wheel (not an editable install) carries the presets, protocols and quickstart checkpoints, so the
installed `lekiwi-drift` command works from any directory; a user's own ./policies and ./trials still win.

The wheel goes into a fresh venv with `--no-deps`, as a user's `pip install` would put it there, console
script included. The heavy dependencies (torch, LeRobot, MuJoCo) come from this venv without a download:
a `.pth` file in the fresh venv lists this venv's site-packages. A path line in a `.pth` adds that folder
to sys.path but does not read the `.pth` files inside it, so the checkout's editable install of
lekiwi_drift (an import hook started by such a file) stays invisible: only the wheel's copy is importable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TASK = "pick up the salt bottle and place it in the basket"
# The shipped salt_bottle protocol, cut to one trial of one policy and half a second of sim time: a
# user's ./trials/salt_bottle.yaml, which must win over the shipped one of the same name.
SHORT_PROTOCOL = f"""task: "{TASK}"
item: salt_bottle
policies: [fm1]
trials_per_policy: 1
seed: 0
time_limit_s: 0.5
reset_countdown_s: 0
latency: "0"
"""


def _dependency_paths() -> list[str]:
    """This venv's site-packages and the plain folders its own `.pth` files add (e.g. rerun_sdk), but
    none of their import lines (the editable installs' hooks)."""
    site = Path(sysconfig.get_paths()["purelib"])
    paths = [str(site)]
    for pth in sorted(site.glob("*.pth")):
        for line in pth.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith(("#", "import ", "import\t")) and (site / line).is_dir():
                paths.append(str(site / line))
    return paths


def _copy_sources(dest: Path) -> Path:
    """The checkout without build output, local data or venvs: pip builds a local folder in place, and a
    stale build/lib (which keeps the _shipped/ copies of an earlier build) would hide a wheel that no
    longer carries them."""
    top = {".venv", ".git", ".keys", ".pytest_cache", "build", "dist", "outputs", "runs"}

    def ignore(folder: str, names: list[str]) -> set[str]:
        rel = Path(folder).relative_to(ROOT)
        skip = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
        if rel == Path("."):
            skip |= top & set(names)
        elif rel == Path("trials"):
            skip.add("sessions")
        return skip

    shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory) -> Path:
    """The package built as a wheel and installed non-editably into a new venv; returns the venv."""
    out = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip"]
    source = _copy_sources(out / "source")
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", str(source), "-w", str(out / "dist")],
        check=True,
        cwd=out,
    )
    wheel = next((out / "dist").glob("lekiwi_drift-*.whl"))
    venv = out / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "_dependencies_from_the_test_venv.pth").write_text("\n".join(_dependency_paths()) + "\n")
    subprocess.run(
        [*pip, "--python", str(venv / "bin" / "python"), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
    )
    assert (venv / "bin" / "lekiwi-drift").is_file(), "the wheel's console script was not installed"
    return venv


def run_installed(venv: Path, program: str, *args: str, cwd: Path, timeout: float = 560.0):
    """Run `program` from the fresh venv's bin/ (`lekiwi-drift`, `python`) in `cwd`, as a user would."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"HF_HUB_OFFLINE": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    return subprocess.run(
        [str(venv / "bin" / program), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_the_wheel_finds_its_shipped_files_and_the_users_own_first(fresh_venv, tmp_path):
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "drift.yaml").write_text("checkpoint: my_checkpoint\n")
    # One interpreter for every lookup: importing the preset code imports LeRobot (minutes under load).
    proc = run_installed(
        fresh_venv,
        "python",
        "-c",
        "import lekiwi_drift, lekiwi_drift.shipped as s; "
        "from lekiwi_drift.trials.protocol import resolve_protocol_path as r; "
        "from lekiwi_drift.trials.session import default_sessions_dir as d; "
        "from lekiwi_drift.control.preset import preset_path as p; "
        "print(lekiwi_drift.__file__, s.shipped_dir('policies'), s.from_checkout()); "
        "print(r('salt_bottle'), r('salt_bottle_sim'), d()); print(p('drift'), p('fm10'))",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    file, policies, checkout, bottle, bottle_sim, sessions, own, shipped = proc.stdout.split()
    assert file.startswith(str(fresh_venv)) and not file.startswith(str(ROOT)), file
    package = Path(file).parent
    assert Path(policies) == package / "_shipped" / "policies" and checkout == "False"
    assert Path(bottle) == package / "_shipped" / "trials" / "salt_bottle.yaml"
    assert Path(bottle_sim) == package / "_shipped" / "trials" / "salt_bottle_sim.yaml"
    assert Path(sessions) == tmp_path / "trials" / "sessions"  # sessions go to the user's directory
    assert Path(own) == tmp_path / "policies" / "drift.yaml"  # the user's preset wins ...
    assert Path(shipped) == package / "_shipped" / "policies" / "fm10.yaml"  # ... the rest are shipped


# The two commands below each import torch and LeRobot and load a shipped checkpoint: seconds of CPU,
# but on a loaded machine minutes of wall time, hence a bound above the suite's default 300 s.
@pytest.mark.timeout(600)
def test_installed_command_runs_the_main_job_from_an_empty_dir(fresh_venv, tmp_path):
    proc = run_installed(
        fresh_venv,
        "lekiwi-drift",
        *("run", "--policy", "drift", "--sim", "--episodes", "1", "--max-time", "0.5", "--latency", "0", "--quiet"),
        cwd=tmp_path,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "drift: 0/1 success" in out or "drift: 1/1 success" in out, out
    package = next((fresh_venv / "lib").glob("python3*/site-packages/lekiwi_drift"))
    assert f"({package}/_shipped/policies/drift.yaml)" in out  # the preset and checkpoint from the wheel
    runs = list((tmp_path / "runs").glob("*/run.json"))
    assert len(runs) == 1  # output goes to the user's directory, never into the package
    assert not (package / "runs").exists() and not (package / "_shipped" / "runs").exists()


@pytest.mark.timeout(600)
def test_installed_command_runs_a_short_headless_trials_session(fresh_venv, tmp_path):
    help_ = run_installed(fresh_venv, "lekiwi-drift", "trials", "--help", cwd=tmp_path)
    assert help_.returncode == 0 and "--headless" in help_.stdout, help_.stdout + help_.stderr

    (tmp_path / "trials").mkdir()
    (tmp_path / "trials" / "salt_bottle.yaml").write_text(SHORT_PROTOCOL)
    trials = ("trials", "salt_bottle", "--sim", "--auto", "--headless")
    proc = run_installed(fresh_venv, "lekiwi-drift", *trials, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    # The user's protocol ran, not the shipped one (three policies, ten trials each): one fm1 trial.
    assert "protocol salt_bottle" in out and "1/1 trials" in out and "[1/1 done] trial 1 fm1" in out, out
    sessions = tmp_path / "trials" / "sessions"
    assert len(list(sessions.glob("salt_bottle-*.sqlite"))) == 1
    assert len(list(sessions.glob("salt_bottle-*-report/report.md"))) == 1
