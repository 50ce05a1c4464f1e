"""`lekiwi-drift host`: serve the robot's cameras and state over the LeKiwi wire (run it on the Pi)."""

from __future__ import annotations

import logging
import signal

from lekiwi_drift.sim.scene import SCENE_HELP, parse_scene

log = logging.getLogger(__name__)


def add_parser(sub) -> None:
    p = sub.add_parser("host", help="serve a robot (real, fake or sim) over the LeKiwi wire")
    p.add_argument("--config", help="robot config YAML (default: ./lekiwi.yaml, else the packaged example)")
    p.add_argument(
        "--robot",
        choices=("lekiwi", "fake", "sim"),
        default="lekiwi",
        help="lekiwi: the real robot; fake: synthetic motors and cameras; sim: MuJoCo LeKiwi",
    )
    p.add_argument("--bind", help="override host.bind (e.g. 127.0.0.1 to serve this machine only)")
    p.add_argument("--max-time", type=float, default=None, help="stop after this many seconds (default: run)")
    sim = p.add_argument_group("sim (--robot sim)")
    sim.add_argument("--item", default="salt_bottle", help="requested item: salt_bottle, matcha_tin, chocolate_bar")
    sim.add_argument("--seed", type=int, default=0, help="scene seed (the jitter of --scene, or the whole layout)")
    sim.add_argument("--scene", type=parse_scene, default=0, metavar="N|random", help=SCENE_HELP)
    sim.add_argument(
        "--clock",
        choices=("realtime", "lockstep"),
        default="realtime",
        help="realtime: physics follows wall time; lockstep: each command advances 1/30 s",
    )
    sim.add_argument("--size", default=None, metavar="WxH", help="sim camera size (default: the config's)")
    sim.add_argument(
        "--expert",
        action="store_true",
        help="publish the scripted expert's action in each header (`_expert`), for "
        "`lekiwi-drift teleop --teleop scripted`",
    )
    p.set_defaults(run=run)


def run(args) -> int:
    from lekiwi_drift.config.robot import load_config
    from lekiwi_drift.link.host import RobotHost
    from lekiwi_drift.robots.factory import make_robot

    cfg = load_config(args.config)
    if args.bind:
        cfg.host.bind = args.bind
    robot = make_robot(args.robot, cfg, args)
    robot.connect()
    host = RobotHost(robot, cfg)

    def on_signal(signum, _frame):
        log.info("%s: stopping the base and shutting down", signal.Signals(signum).name)
        host.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        code = host.run(max_time_s=args.max_time)
    finally:
        host.close()
        robot.disconnect()  # stops the base, then releases the arm as configured (host.release_on_exit)
    return code
