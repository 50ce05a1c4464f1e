"""`lekiwi-drift calibrate follower|leader`: LeRobot's calibration flows for the LeKiwi arm (run it on
the Pi) and the SO-101 leader (on the laptop).

Both files land in the config's `calibration_dir` named by device id — `<calibration_dir>/<id>.json` for
the follower, `<calibration_dir>/<leader_id>.json` for the leader — which is exactly LeRobot's
`calibration_fpath` when `calibration_dir` is set, and where `lekiwi-drift host` and `lekiwi-drift teleop`
read them. LeRobot asks on the terminal (move to the middle, sweep the joints, press ENTER).
"""

from __future__ import annotations

import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("calibrate", help="calibrate the LeKiwi arm (follower, on the Pi) or the SO-101 leader")
    p.add_argument(
        "device",
        choices=("follower", "leader"),
        help="follower: the LeKiwi's arm motors (port, id); leader: the SO-101 leader (leader_port, leader_id)",
    )
    p.add_argument("--config", help="robot config YAML (default: ./lekiwi.yaml, else the packaged example)")
    p.add_argument("--port", help="override the serial port from the config")
    p.set_defaults(run=run)


def make_device(device: str, cfg):
    """The LeRobot device to calibrate, configured so its calibration file is ours (no cameras: the
    follower's calibration touches only the motor bus)."""
    from lekiwi_drift.teleop.leader import check_ids, check_port, leader_config

    check_ids(cfg)
    if device == "leader":
        check_port(cfg.leader_port, "SO-101 leader", cfg, "leader_port")
        from lerobot.teleoperators.so_leader import SO101Leader

        return SO101Leader(leader_config(cfg))
    check_port(cfg.port, "LeKiwi follower (motor bus)", cfg, "port")
    from lerobot.robots.lekiwi import LeKiwi, LeKiwiConfig

    return LeKiwi(
        LeKiwiConfig(
            id=cfg.id,
            calibration_dir=Path(cfg.calibration_dir),
            port=cfg.port,
            cameras={},
            disable_torque_on_disconnect=True,
        )
    )


def run(args) -> int:
    from lekiwi_drift.config.robot import load_config
    from lekiwi_drift.teleop.leader import calibration_file

    cfg = load_config(args.config)
    if args.port:
        if args.device == "leader":
            cfg.leader_port = args.port
        else:
            cfg.port = args.port
    device_id = cfg.leader_id if args.device == "leader" else cfg.id
    expected = calibration_file(cfg, device_id)
    device = make_device(args.device, cfg)
    if Path(device.calibration_fpath) != expected:  # would mean LeRobot changed its naming: fail loudly
        print(
            f"lekiwi-drift calibrate: LeRobot would write {device.calibration_fpath}, but host and teleop read "
            f"{expected}",
            file=sys.stderr,
        )
        return 1
    # LeRobot's own flow (lerobot-calibrate): connect without auto-calibration, calibrate, disconnect.
    device.connect(calibrate=False)
    try:
        device.calibrate()
    finally:
        device.disconnect()
    print(f"calibration for {args.device} {device_id!r} saved to {expected}")
    return 0
