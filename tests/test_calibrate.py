"""`lekiwi-drift calibrate`: LeRobot's calibration file naming agrees with what host and teleop read;
absent ports, missing calibrations and clashing ids fail with the command that fixes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from lekiwi_drift.config.robot import ConfigError, RobotConfig


def _cfg(tmp_path: Path, **kw) -> RobotConfig:
    cfg = RobotConfig(**kw)
    cfg.calibration_dir = str(tmp_path / "calibration")
    cfg.source = "test.yaml"
    return cfg


def test_file_names_agree_with_lerobot(tmp_path):
    pytest.importorskip("lerobot.robots.lekiwi")
    from lerobot.robots.lekiwi import LeKiwi, LeKiwiConfig
    from lerobot.teleoperators.so_leader import SO101Leader

    from lekiwi_drift.teleop.leader import calibration_file, leader_config

    cfg = _cfg(tmp_path, id="kiwi7", leader_id="lead3")
    follower = LeKiwi(LeKiwiConfig(id=cfg.id, calibration_dir=Path(cfg.calibration_dir), port="/dev/null", cameras={}))
    leader = SO101Leader(leader_config(cfg))
    assert Path(follower.calibration_fpath) == calibration_file(cfg, "kiwi7") == tmp_path / "calibration/kiwi7.json"
    assert Path(leader.calibration_fpath) == calibration_file(cfg, "lead3") == tmp_path / "calibration/lead3.json"

    # The host (robots/lekiwi.py) reads the follower's file from the same place.
    from lekiwi_drift.robots.lekiwi import make_lekiwi

    with pytest.raises(ConfigError, match=r"kiwi7\.json.*lekiwi-drift calibrate follower"):
        make_lekiwi(cfg)


def test_absent_ports_and_clashing_ids(tmp_path):
    from lekiwi_drift.cli.calibrate import make_device

    cfg = _cfg(tmp_path, port=str(tmp_path / "ttyACM9"), leader_port=str(tmp_path / "ttyACM8"))
    with pytest.raises(ConfigError, match=r"ttyACM9 does not exist.*lerobot-find-port.*port in test\.yaml"):
        make_device("follower", cfg)
    with pytest.raises(ConfigError, match=r"ttyACM8 does not exist.*leader_port"):
        make_device("leader", cfg)
    cfg.leader_id = cfg.id
    with pytest.raises(ConfigError, match="leader_id and id are both"):
        make_device("leader", cfg)


def test_teleop_leader_needs_calibration_then_port(tmp_path):
    from lekiwi_drift.teleop.leader import LeaderArm

    cfg = _cfg(tmp_path, leader_port=str(tmp_path / "ttyUSB5"))
    with pytest.raises(ConfigError, match=r"leader\.json; run `lekiwi-drift calibrate leader`"):
        LeaderArm(cfg).connect()
    (tmp_path / "calibration").mkdir()
    (tmp_path / "calibration" / "leader.json").write_text("{}")
    with pytest.raises(ConfigError, match="ttyUSB5 does not exist"):
        LeaderArm(cfg).connect()


def test_calibrate_runs_lerobots_flow(tmp_path, monkeypatch, capsys):
    """connect(calibrate=False) -> calibrate() -> disconnect(), as lerobot-calibrate does."""
    import lekiwi_drift.cli.calibrate as cal
    from lekiwi_drift.cli.main import main

    calls = []
    path = tmp_path / "calibration" / "leader.json"

    class Device:
        calibration_fpath = path

        def connect(self, calibrate=True):
            calls.append(("connect", calibrate))

        def calibrate(self):
            calls.append("calibrate")

        def disconnect(self):
            calls.append("disconnect")

    monkeypatch.setattr(cal, "make_device", lambda device, cfg: Device())
    config = tmp_path / "lekiwi.yaml"
    config.write_text(f"calibration_dir: {tmp_path / 'calibration'}\n")
    assert main(["calibrate", "leader", "--config", str(config)]) == 0
    assert calls == [("connect", False), "calibrate", "disconnect"]
    assert str(path) in capsys.readouterr().out
