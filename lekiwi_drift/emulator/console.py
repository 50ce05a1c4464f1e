"""`lekiwi-drift sim buses`: run the emulated robot and take an operator's (or a test's) commands on stdin.

Commands, one a line:
  sweep follower|leader     move the arm's joints through their ranges (for LeRobot's calibration)
  play leader wave|stop     a demonstrator moves the leader along a fixed path (teleop without hands)
  fault follower|leader ID silent|corrupt N|overload|ok
                            a servo stops answering / sends N bad checksums / trips overload / recovers
  unplug follower|leader    close that bus's pty (as pulling its USB cable)
  pose                      print the sim base pose (x y yaw)
  quit                      stop (also on end of input, Ctrl-C or SIGTERM)
Each command answers with one line starting "ok" or "error".
"""

from __future__ import annotations

import signal
import sys
import threading


def add_parser(cmds) -> None:
    p = cmds.add_parser(
        "buses",
        help="emulated LeKiwi + SO-101 leader servo buses on ptys (the real-robot path without a robot)",
        description=__doc__,
    )
    p.add_argument("--config-out", default="lekiwi_emu.yaml", help="robot config to write (default: %(default)s)")
    p.add_argument("--calibration-dir", default="calibration", help="calibration_dir written into the config")
    p.add_argument("--id", default="lekiwi_emu", help="robot id written into the config")
    p.add_argument("--leader-id", default="leader_emu", help="leader id written into the config")
    p.add_argument("--follower-link", help="also expose the follower bus at this path (a symlink)")
    p.add_argument("--leader-link", help="also expose the leader bus at this path (a symlink)")
    p.add_argument("--port-cmd", type=int, default=5555, help="host.port_cmd written into the config")
    p.add_argument("--port-obs", type=int, default=5556, help="host.port_obs written into the config")
    p.add_argument(
        "--cameras", nargs="*", default=["front", "wrist", "top"], help="sim cameras to serve (none: no cameras)"
    )
    p.add_argument("--camera-size", default="320x240", metavar="WxH", help="sim camera size (default: %(default)s)")
    p.add_argument("--camera-fps", type=float, default=15.0, help="sim camera rate (default: %(default)s)")
    p.add_argument(
        "--factory",
        action="store_true",
        help="start with factory servos (default: write existing calibration files into them, as real servos "
        "keep their calibration across power cycles)",
    )
    p.add_argument("--item", default="salt_bottle")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)


def handle_command(rig, line: str) -> str:
    """One console command -> its one-line answer."""
    words = line.split()
    if not words:
        return "ok"
    cmd, args = words[0], words[1:]
    try:
        if cmd == "sweep" and len(args) == 1:
            result = rig.sweep(args[0])
            result.done.wait()
            if result.refused:
                return f"error: torque is on for IDs {result.refused}; LeRobot disables it before asking"
            return f"ok swept {args[0]}"
        if cmd == "fault" and len(args) >= 3:
            bus = rig.bus(args[0])
            with bus.lock:
                faults = bus.servo(int(args[1])).faults
                kind = args[2]
                if kind == "silent":
                    faults.silent = True
                elif kind == "corrupt":
                    faults.corrupt_replies = int(args[3]) if len(args) > 3 else 1
                elif kind == "overload":
                    faults.overloaded = True
                elif kind == "ok":
                    faults.silent, faults.corrupt_replies, faults.overloaded, faults.error_bits = False, 0, False, 0
                else:
                    return f"error: unknown fault {kind!r}; use silent, corrupt N, overload or ok"
            return f"ok fault {' '.join(args)}"
        if cmd == "play" and len(args) == 2 and args[0] == "leader":
            rig.play_leader(args[1])
            return f"ok play leader {args[1]}"
        if cmd == "unplug" and len(args) == 1:
            rig.bus(args[0]).close()
            return f"ok unplugged {args[0]}"
        if cmd == "pose":
            x, y, yaw = rig.base_pose()
            return f"ok pose {x:.4f} {y:.4f} {yaw:.4f}"
        if cmd == "quit":
            return "ok bye"
    except (ValueError, KeyError) as exc:
        return f"error: {exc}"
    return f"error: unknown command {line.strip()!r}; see `lekiwi-drift sim buses --help`"


def run(args) -> int:
    from lekiwi_drift.emulator.rig import EmulatorRig, RigConfig

    try:
        w, h = (int(v) for v in args.camera_size.lower().split("x"))
    except ValueError:
        print(f"lekiwi-drift sim buses: --camera-size {args.camera_size!r} is not WxH, e.g. 320x240", file=sys.stderr)
        return 2

    rig = EmulatorRig(
        RigConfig(
            follower_link=args.follower_link,
            leader_link=args.leader_link,
            robot_id=args.id,
            leader_id=args.leader_id,
            calibration_dir=args.calibration_dir,
            item=args.item,
            seed=args.seed,
            host_ports=(args.port_cmd, args.port_obs),
            cameras=tuple(args.cameras),
            camera_size=(w, h),
            camera_fps=args.camera_fps,
            restore_calibration=not args.factory,
        )
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with rig:
        path = rig.write_config(args.config_out)
        print(f"follower bus (LeKiwi arm 1-6, wheels 7-9): {rig.follower.port}", flush=True)
        print(f"leader bus (SO-101, 1-6): {rig.leader.port}", flush=True)
        for name, src in rig.restored.items():
            if src:
                print(f"{name} servos hold the calibration in {src}", flush=True)
        print(f"robot config: {path}", flush=True)
        print("ready", flush=True)

        def console() -> None:
            for line in sys.stdin:
                answer = handle_command(rig, line)
                print(answer, flush=True)
                if line.strip() == "quit":
                    break
            stop.set()

        threading.Thread(target=console, name="console", daemon=True).start()
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return 0
