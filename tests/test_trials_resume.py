"""Crash safety: a real process running a session (the TUI headless, unattended, with the scripted
stand-in for the control loop) is killed with SIGKILL mid-session; a second TUI on the same session
is refused meanwhile; a restart resumes at the next trial with every scored trial intact.

Run as a module (`python -m tests.test_trials_resume SESSIONS_DIR`) this file is that process."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
POLICIES = ["drift", "fm10", "fm1"]
PER_POLICY = 4


def rows(db: Path) -> list[tuple]:
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        return conn.execute("SELECT id, slot, policy, outcome, scored_at, voided_at FROM trials ORDER BY id").fetchall()


def spawn(sessions: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.test_trials_resume", str(sessions)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_rows(db_dir: Path, n: int, proc: subprocess.Popen, timeout_s: float = 30.0) -> Path:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        dbs = list(db_dir.glob("*.sqlite"))
        if dbs and len(rows(dbs[0])) >= n:
            return dbs[0]
        if proc.poll() is not None:
            raise AssertionError(f"session process exited early ({proc.returncode}): {proc.stdout.read()}")
        time.sleep(0.02)
    raise AssertionError(f"fewer than {n} scored trials after {timeout_s} s")


def test_kill_9_mid_session_then_resume(tmp_path):
    sessions = tmp_path / "sessions"
    first = spawn(sessions)
    try:
        db = wait_rows(sessions, 3, first)
        # A second TUI on the same session is refused with a clear message (real CLI, same session).
        second = subprocess.run(
            [sys.executable, "-m", "lekiwi_drift.cli.main", "trials", "--resume", str(db)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 3, second.stderr
        assert "already open in another" in second.stderr and str(first.pid) in second.stderr
        before = rows(db)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        assert first.returncode == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
    survived = rows(db)
    assert survived[: len(before)] == before and 3 <= len(survived) < len(POLICIES) * PER_POLICY
    restart = spawn(sessions)
    out, _ = restart.communicate(timeout=60)
    assert restart.returncode == 0, out
    final = rows(db)
    assert final[: len(survived)] == survived  # every trial scored before the kill is untouched
    live_slots = sorted(r[1] for r in final if r[5] is None and r[3] != "aborted")
    assert live_slots == list(range(len(POLICIES) * PER_POLICY))  # each trial scored exactly once
    assert len(list(sessions.glob("*.sqlite"))) == 1  # resumed, not restarted


def main(sessions_dir: str) -> int:
    """The session process: resume the unfinished session in `sessions_dir` or start one, and run it
    unattended in the headless TUI."""
    from lekiwi_drift.trials.app import TrialsApp
    from lekiwi_drift.trials.protocol import parse_protocol
    from lekiwi_drift.trials.session import TrialSession
    from tests.test_trials_tui import FakeBackend

    protocol = parse_protocol(
        {
            "task": "pick up the salt bottle",
            "item": "salt_bottle",
            "policies": POLICIES,
            "trials_per_policy": PER_POLICY,
            "seed": 3,
            "reset_countdown_s": 0,
            "time_limit_s": 0.25,
        },
        "resume-test.yaml",
        default_name="resume_test",
    )
    found = TrialSession.find_unfinished(protocol.name, Path(sessions_dir))
    session = TrialSession.open(found) if found else TrialSession.create(protocol, Path(sessions_dir))
    ends = {p: [(0.15, "success", True)] * PER_POLICY for p in ("drift", "fm10")}  # fm1 times out
    app = TrialsApp(session, FakeBackend(POLICIES, sim=True, ends=ends), auto=True, exit_when_done=True)
    code = app.run(headless=True)
    session.close()
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
