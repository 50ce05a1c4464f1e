"""LeRobot's real LeKiwi class (through our make_lekiwi and RobotHost) on emulated STS3215 buses: the
calibration check before anything moves, the max_relative_target bug, torque release, and the host's
answer to a servo that stops answering."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable

import pytest

pytest.importorskip("scservo_sdk")

from lekiwi_drift.config.robot import ConfigError, RobotConfig  # noqa: E402
from lekiwi_drift.emulator.bus_process import BusProcess  # noqa: E402
from lekiwi_drift.emulator.layouts import ARM_HALF_RANGE, ARM_MIDDLE, FOLLOWER_IDS, follower_servos  # noqa: E402
from lekiwi_drift.robots.features import STATE_KEYS  # noqa: E402

# The buses run in their own process (BusProcess): LeRobot's reads busy-poll holding this process's GIL,
# and an emulator thread in here would have to win the GIL back within LeRobot's 50 ms packet timeout.


def _calibration() -> dict[str, dict]:
    """What LeRobot's calibration writes for arms centred at ARM_MIDDLE: offsets, ranges, full-turn wheels."""
    cal = {}
    for name, sid in FOLLOWER_IDS.items():
        joint = name.removeprefix("arm_")
        if name.startswith("arm_") and joint != "wrist_roll":
            half = ARM_HALF_RANGE[joint]
            cal[name] = {"homing_offset": ARM_MIDDLE[joint] - 2047, "range_min": 2047 - half, "range_max": 2047 + half}
        elif name.startswith("arm_"):
            cal[name] = {"homing_offset": ARM_MIDDLE[joint] - 2047, "range_min": 0, "range_max": 4095}
        else:
            cal[name] = {"homing_offset": 0, "range_min": 0, "range_max": 4095}
        cal[name] = {"id": sid, "drive_mode": 0} | cal[name]
    return cal


def _flashed(cal: dict[str, dict]) -> BusProcess:
    """A follower bus whose motors are as an earlier calibration left them (EEPROM written unlocked)."""
    servos = {s.id: s for s in follower_servos()}
    for c in cal.values():
        servo = servos[c["id"]]
        servo.set("Lock", 0)
        for reg, key in (("Homing_Offset", "homing_offset"), ("Min_Position_Limit", "range_min")):
            servo.set(reg, c[key])
        servo.set("Max_Position_Limit", c["range_max"])
    return BusProcess(list(servos.values()))


def _eventually(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    """A SYNC_WRITE gets no answer, so nothing tells the host (or us) when the bus has handled it: on a
    loaded machine the emulator may still have it queued on the pty when the host call returns."""
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        time.sleep(0.02)
    return cond()


def _config(tmp_path, port: str, **host) -> RobotConfig:
    cfg = RobotConfig(id="emu", port=port, calibration_dir=str(tmp_path), cameras=[])
    for k, v in host.items():
        setattr(cfg.host, k, v)
    return cfg


def test_mismatched_calibration_is_refused_before_anything_moves(tmp_path):
    from lekiwi_drift.robots.lekiwi import make_lekiwi

    with _flashed(_calibration()) as emu:
        other = _calibration()
        other["arm_elbow_flex"]["homing_offset"] += 400  # another robot's file
        (tmp_path / "emu.json").write_text(json.dumps(other))
        robot = make_lekiwi(_config(tmp_path, emu.port))
        with pytest.raises(ConfigError) as err:
            robot.connect()
        msg = str(err.value)
        assert "does not match the motors" in msg and "arm_elbow_flex (ID 3): homing_offset" in msg
        assert "lekiwi-drift calibrate follower" in msg and "arm_shoulder_pan" not in msg
        # Only pings and reads went out: no write, no sync write, no torque.
        assert set(emu.counts) <= {"PING", "READ"}, emu.counts
        assert not any(s.get("Torque_Enable") for s in emu.servos)


def test_matching_calibration_connects_drives_and_releases(tmp_path):
    from lekiwi_drift.robots.lekiwi import make_lekiwi

    cal = _calibration()
    with _flashed(cal) as emu:
        (tmp_path / "emu.json").write_text(json.dumps(cal))
        robot = make_lekiwi(_config(tmp_path, emu.port, release_on_exit=False))
        robot.connect()
        try:
            assert all(s.get("Torque_Enable") == 1 for s in emu.servos)
            assert emu.servo(7).get("Operating_Mode") == 1 and emu.servo(1).get("Operating_Mode") == 0
            obs = robot.get_observation()
            assert abs(obs["arm_shoulder_pan.pos"]) < 0.5  # the arm sits at its calibrated middle
            action = {k: 0.0 for k in STATE_KEYS} | {"arm_wrist_flex.pos": 30.0, "theta.vel": 45.0}
            robot.send_action(action)
            deadline = time.monotonic() + 3
            while abs(robot.get_observation()["arm_wrist_flex.pos"] - 30.0) > 0.5 and time.monotonic() < deadline:
                time.sleep(0.05)
            obs = robot.get_observation()
            assert obs["arm_wrist_flex.pos"] == pytest.approx(30.0, abs=0.5)
            assert obs["theta.vel"] == pytest.approx(45.0, abs=1.0)  # wheel speeds back through LeRobot's kinematics

            # LeRobot 0.6.1: with max_relative_target set, send_action looks up present positions by
            # motor name with the goal's `.pos` key, a KeyError. make_lekiwi leaves it None for this.
            assert robot.config.max_relative_target is None
            robot.config.max_relative_target = 10.0
            with pytest.raises(KeyError, match=r"arm_\w+\.pos"):
                robot.send_action(action)
            robot.config.max_relative_target = None
        finally:
            robot.disconnect()
        # release_on_exit False: the arm keeps holding, the base is stopped.
        assert all(emu.servo(i).get("Torque_Enable") == 1 for i in range(1, 7))
        assert _eventually(lambda: all(emu.servo(i).get("Goal_Velocity") == 0 for i in (7, 8, 9)))


def test_host_exits_3_when_a_servo_stops_answering(tmp_path):
    from lekiwi_drift.link.host import EXIT_READ_FAILURES, RobotHost
    from lekiwi_drift.link.ports import free_loopback_ports
    from lekiwi_drift.robots.lekiwi import make_lekiwi

    cal = _calibration()
    with _flashed(cal) as emu:
        (tmp_path / "emu.json").write_text(json.dumps(cal))
        cmd, obs = free_loopback_ports(2)
        cfg = _config(
            tmp_path, emu.port, max_failures=4, watchdog_ms=60_000.0, bind="127.0.0.1", port_cmd=cmd, port_obs=obs
        )
        robot = make_lekiwi(cfg)
        robot.connect()
        host = RobotHost(robot, cfg)
        result = {}
        thread = threading.Thread(target=lambda: result.setdefault("code", host.run(max_time_s=30)), daemon=True)
        try:
            robot.send_action({k: 0.0 for k in STATE_KEYS} | {"x.vel": 0.1})  # the base is moving
            thread.start()
            time.sleep(0.5)
            assert host.stats.observations + host.stats.dropped_observations > 0  # captured (no client: dropped)
            assert host.stats.read_failures == 0
            assert _eventually(lambda: emu.servo(7).get("Goal_Velocity") != 0)  # no watchdog stop in this test
            emu.servo(4).faults.silent = True  # wrist flex stops answering
            thread.join(timeout=20)
            assert result.get("code") == EXIT_READ_FAILURES == 3
            assert host.stats.read_failures >= 4
            # On the way out the host stopped the base: the wheels still answer and were told 0.
            assert _eventually(lambda: all(emu.servo(i).get("Goal_Velocity") == 0 for i in (7, 8, 9)))
        finally:
            host.close()
            emu.servo(4).faults.silent = False
            robot.disconnect()
        assert not any(s.get("Torque_Enable") for s in emu.servos)  # release_on_exit (default True)


def test_host_exits_3_when_the_bus_is_unplugged(tmp_path, caplog):
    """The pty closes mid-run (USB cable out): reads fail, the host gives up with exit 3, and stopping the
    base and releasing the arm report the dead bus instead of raising out of the host."""
    from lekiwi_drift.link.host import EXIT_READ_FAILURES, RobotHost
    from lekiwi_drift.link.ports import free_loopback_ports
    from lekiwi_drift.robots.lekiwi import make_lekiwi

    cal = _calibration()
    emu = _flashed(cal).start()
    try:
        (tmp_path / "emu.json").write_text(json.dumps(cal))
        cmd, obs = free_loopback_ports(2)
        cfg = _config(tmp_path, emu.port, max_failures=4, bind="127.0.0.1", port_cmd=cmd, port_obs=obs)
        robot = make_lekiwi(cfg)
        robot.connect()
        host = RobotHost(robot, cfg)
        result = {}
        thread = threading.Thread(target=lambda: result.setdefault("code", host.run(max_time_s=30)), daemon=True)
        thread.start()
        time.sleep(0.3)
        emu.close()
        thread.join(timeout=20)
        host.close()
        assert result.get("code") == EXIT_READ_FAILURES
        robot.disconnect()  # does not raise: the bus is gone and it says so
        assert "could not stop the base, the motor bus does not answer" in caplog.text
        assert "could not release the arm" in caplog.text
    finally:
        emu.close()


@pytest.mark.slow
@pytest.mark.parametrize("release", [True, False])
def test_ctrl_c_stops_the_base_and_releases_the_arm_as_configured(tmp_path, release):
    """`lekiwi-drift host` (its own process) on an emulated bus served from this one; Ctrl-C (SIGINT)
    stops the base and, per host.release_on_exit, releases the arm or leaves it holding."""
    import os
    import signal
    import subprocess

    import yaml

    from lekiwi_drift.link.ports import free_loopback_ports

    cal = _calibration()
    with _flashed(cal) as emu:
        (tmp_path / "emu.json").write_text(json.dumps(cal))
        cmd, obs = free_loopback_ports(2)
        config = {
            "id": "emu", "port": emu.port, "calibration_dir": str(tmp_path), "cameras": [],
            "host": {"bind": "127.0.0.1", "port_cmd": cmd, "port_obs": obs, "release_on_exit": release,
                     "watchdog_ms": 60000},
        }  # fmt: skip
        (tmp_path / "emu.yaml").write_text(yaml.safe_dump(config))
        host = subprocess.Popen(
            [sys.executable, "-m", "lekiwi_drift.cli.main", "host", "--config", str(tmp_path / "emu.yaml")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 90
            while not all(s.get("Torque_Enable") for s in emu.servos) and time.monotonic() < deadline:
                assert host.poll() is None, host.stdout.read()
                time.sleep(0.1)
            assert all(s.get("Torque_Enable") for s in emu.servos), "the host never configured the robot"
            for sid in (7, 8, 9):  # the base is moving (as a command left it) when Ctrl-C comes
                emu.servo(sid).set("Goal_Velocity", 400)
            host.send_signal(signal.SIGINT)
            out, _ = host.communicate(timeout=30)
        finally:
            if host.poll() is None:
                host.kill()
                host.wait()
        assert host.returncode == 0, out
        assert _eventually(lambda: all(emu.servo(i).get("Goal_Velocity") == 0 for i in (7, 8, 9))), out
        assert all(bool(emu.servo(i).get("Torque_Enable")) is not release for i in range(1, 7)), out


def test_corrupt_replies_are_retried_then_skipped(tmp_path):
    """A status packet with a bad checksum: LeKiwi's read retries (num_read_retries=2) absorb one; three
    in a row fail that observation, which the host skips and counts, and it keeps serving."""
    from lekiwi_drift.link.host import RobotHost
    from lekiwi_drift.link.ports import free_loopback_ports
    from lekiwi_drift.robots.lekiwi import make_lekiwi

    cal = _calibration()
    with _flashed(cal) as emu:
        (tmp_path / "emu.json").write_text(json.dumps(cal))
        cmd, obs = free_loopback_ports(2)
        cfg = _config(tmp_path, emu.port, bind="127.0.0.1", port_cmd=cmd, port_obs=obs)
        robot = make_lekiwi(cfg)
        robot.connect()
        host = RobotHost(robot, cfg)
        result = {}
        thread = threading.Thread(target=lambda: result.setdefault("code", host.run(max_time_s=30)), daemon=True)

        def captured() -> int:
            return host.stats.observations + host.stats.dropped_observations

        def wait_for(cond, timeout=5.0) -> bool:
            end = time.monotonic() + timeout
            while not cond() and time.monotonic() < end:
                time.sleep(0.01)
            return cond()

        try:
            thread.start()
            assert wait_for(lambda: captured() > 3)
            emu.servo(2).faults.corrupt_replies = 1
            assert wait_for(lambda: emu.servo(2).faults.corrupt_replies == 0)
            assert host.stats.read_failures == 0  # retried
            emu.servo(2).faults.corrupt_replies = 3
            assert wait_for(lambda: host.stats.read_failures == 1)
            before = captured()
            assert wait_for(lambda: captured() > before + 3)  # still serving
            assert host.stats.read_failures == 1 and thread.is_alive()
        finally:
            host.stop()
            thread.join(timeout=10)
            host.close()
            robot.disconnect()
        assert result.get("code") == 0


def test_overload_trip_is_invisible_to_lerobots_sync_read(tmp_path):
    """A servo trips overload protection: it drops torque and flags bit 0x20 in every status packet.
    scservo_sdk's GroupSyncRead discards the error byte, so LeKiwi's observations go on as if nothing
    happened while the joint no longer follows its goal; only a single-motor read reports it."""
    from lekiwi_drift.robots.lekiwi import make_lekiwi

    cal = _calibration()
    with _flashed(cal) as emu:
        (tmp_path / "emu.json").write_text(json.dumps(cal))
        robot = make_lekiwi(_config(tmp_path, emu.port))
        robot.connect()
        try:
            emu.servo(3).faults.overloaded = True
            action = {k: 0.0 for k in STATE_KEYS} | {"arm_elbow_flex.pos": 30.0, "arm_wrist_flex.pos": 30.0}
            robot.send_action(action)
            time.sleep(0.5)
            obs = robot.get_observation()  # no error: the overload flag is dropped on the way up
            assert obs["arm_wrist_flex.pos"] == pytest.approx(30.0, abs=0.5)
            assert abs(obs["arm_elbow_flex.pos"]) < 0.5  # torque off: the elbow stayed where it was
            with pytest.raises(RuntimeError, match="Overload"):
                robot.bus.read("Present_Position", "arm_elbow_flex")
        finally:
            emu.servo(3).faults.overloaded = False
            robot.disconnect()
