"""`--display-data` (live_view.py): what a run, a teleop session and `watch` send to Rerun, read back from
a `.rrd` recording (`--display-save`: the same logging, into a file instead of a viewer)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from lekiwi_drift.robots.features import STATE_KEYS

rr = pytest.importorskip("rerun")
CAMS = ("front", "wrist", "top")


def read_rrd(path) -> dict[str, dict[str, list]]:
    """{entity path: {column: values}} of a Rerun recording, rows in the order they were logged."""
    with warnings.catch_warnings():  # load_recording: deprecated in 0.32 for an experimental reader
        warnings.simplefilter("ignore", DeprecationWarning)
        from rerun.recording import load_recording

        chunks = list(load_recording(str(path)).chunks())
    out: dict[str, dict[str, list]] = {}
    for chunk in chunks:
        batch = chunk.to_record_batch()
        columns = out.setdefault(chunk.entity_path, {})
        for name in batch.schema.names:
            columns.setdefault(name, []).extend(batch.column(name).to_pylist())
    return out


def scalars(entity: dict[str, list]) -> list[tuple[int, float]]:
    """(tick, value) of a Scalars entity, by tick."""
    return sorted((t, v[0]) for t, v in zip(entity["tick"], entity["Scalars:scalars"]))


@pytest.fixture(scope="module")
def keystone_preset(tiny_checkpoint, tiny_vlm_dir):
    from lekiwi_drift.control.preset import load_preset

    path = tiny_checkpoint / "live.yaml"
    path.write_text(
        f"checkpoint: {tiny_checkpoint / 'model'}\nvlm_dir: {tiny_vlm_dir}\nsim_size: 64x48\n"
        "keystone_samples: 4\nkeystone_clusters: 2\nend_on_success: false\n"
    )
    return load_preset(path)


def test_a_run_shows_cameras_state_commands_chunks_and_keystone_spread(tmp_path, keystone_preset):
    from lekiwi_drift.config.robot import load_config
    from lekiwi_drift.control.runtime import PolicyRuntime
    from lekiwi_drift.control.session import RobotSession, SimSpec
    from lekiwi_drift.live_view import LiveView

    cfg = load_config(None)
    runtime = PolicyRuntime.load(keystone_preset, cfg)
    live = LiveView(save_path=tmp_path / "run.rrd")
    with RobotSession(cfg, sim=SimSpec(size="64x48"), latency="0", run_dir=tmp_path) as session:
        session.open()
        loop = session.add_policy("ks", runtime, live=live)
        session.reset("salt_bottle", 3, 0)
        result = session.run_episode("ks", max_time_s=0.5)
    live.close()
    assert result.outcome == "timeout", result.error
    records = [json.loads(x) for x in loop.telemetry.path.read_text().splitlines()]
    chunks = [r for r in records if r["kind"] == "chunk"]

    got = read_rrd(tmp_path / "run.rrd")
    for cam in CAMS:  # LeRobot's names: observation.<camera>, each an image at the size the robot sends
        (fmt,) = {json.dumps(f) for f in got[f"/observation.{cam}"]["Image:format"]}
        assert '"width": 64' in fmt and '"height": 48' in fmt
    for key in STATE_KEYS:
        assert [t for t, _ in scalars(got[f"/observation.{key}"])] == list(range(15))  # 0.5 s at 30 Hz
        assert [t for t, _ in scalars(got[f"/action.{key}"])] == list(range(15))
    # The commands shown are the ones sent: 15 ticks that move the arm, not a repeated hold.
    pan = [v for _, v in scalars(got["/action.arm_shoulder_pan.pos"])]
    assert len(set(np.round(pan, 4))) > 1
    # One step of policy/chunk per chunk that took over, at its tick; KeyStone's spread with each.
    shown = scalars(got["/policy/chunk"])
    assert [v for _, v in shown] == [float(c["chunk"]) for c in chunks] and len(chunks) >= 2
    spreads = [v for _, v in scalars(got["/policy/keystone_spread"])]
    assert spreads == pytest.approx([c["spread"] for c in chunks], rel=1e-5)
    events = [t[0] if isinstance(t, list) else t for t in got["/policy/events"]["TextLog:text"]]
    assert sum("took over" in e and "KeyStone spread" in e for e in events) == len(chunks)
    assert any("episode 1: timeout" in e for e in events)


def test_teleop_and_watch_show_what_the_robot_sends(tmp_path):
    """`teleop --display-save` (the scripted expert driving the lockstep sim) and `watch --serve sim`."""
    from lekiwi_drift.cli.main import main

    path = tmp_path / "teleop.rrd"
    argv = ["teleop", "--sim", "--clock", "lockstep", "--size", "64x48", "--max-time", "0.5", "--no-keyboard"]
    assert main([*argv, "--display-save", str(path)]) == 0
    got = read_rrd(path)
    ticks = [t for t, _ in scalars(got["/action.x.vel"])]
    assert ticks == list(range(15))  # 0.5 s of lockstep ticks at 30 Hz, each with the command sent
    assert len(scalars(got["/observation.arm_gripper.pos"])) == len(ticks)
    assert {f"/observation.{c}" for c in CAMS} <= set(got)

    path = tmp_path / "watch.rrd"
    assert main(["watch", "--serve", "sim", "--max-time", "1.5", "--display-save", str(path)]) == 0
    got = read_rrd(path)
    assert len(scalars(got["/observation.arm_shoulder_pan.pos"])) >= 5  # observations, no commands
    assert not any(k.startswith("/action.") for k in got)
    assert {f"/observation.{c}" for c in CAMS} <= set(got)
