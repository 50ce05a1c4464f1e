"""`lekiwi-drift watch`: connect to a host and print live observation stats (rate, age, decode time)."""

from __future__ import annotations

import sys
import threading
import time

from lekiwi_drift.live_view import add_display_arguments


def add_parser(sub) -> None:
    p = sub.add_parser("watch", help="connect to a robot host and show live observation stats")
    p.add_argument("--config", help="robot config YAML")
    p.add_argument("--host", help="override host.address (the robot's IP)")
    p.add_argument("--serve", choices=("fake", "sim"), help="also start a local host serving this robot")
    p.add_argument("--max-time", type=float, default=None, help="stop after this many seconds")
    add_display_arguments(p)
    p.set_defaults(run=run)


def _start_local_host(kind: str, cfg):
    """A host in this process on free loopback ports; returns (config pointing at it, stop function)."""
    if kind == "sim":
        from lekiwi_drift.sim.local import start_local_sim_host

        handle = start_local_sim_host(cfg, clock="realtime", size="320x240")
        print(f"serving a simulated LeKiwi on 127.0.0.1:{handle.config.host.port_obs}")
        return handle.config, handle.stop
    from lekiwi_drift.link.host import RobotHost
    from lekiwi_drift.link.ports import free_loopback_ports
    from lekiwi_drift.robots.factory import make_robot

    cfg.host.bind = cfg.host.address = "127.0.0.1"
    cfg.host.port_cmd, cfg.host.port_obs = free_loopback_ports(2)
    robot = make_robot(kind, cfg)
    robot.connect()
    host = RobotHost(robot, cfg)
    thread = threading.Thread(target=host.run, name="local-host", daemon=True)
    thread.start()
    print(f"serving a fake LeKiwi on 127.0.0.1:{cfg.host.port_obs}")

    def stop() -> None:
        host.stop()
        thread.join(timeout=3)
        host.close()
        robot.disconnect()

    return cfg, stop


def _line(link, rate: float) -> str:
    obs = link.latest()
    s = link.stats
    dec = sorted(s.decode_ms)[len(s.decode_ms) // 2] if s.decode_ms else float("nan")
    cams = " ".join(f"{n}:{im.shape[1]}x{im.shape[0]}" for n, im in obs.images.items())
    arm = " ".join(f"{v:6.1f}" for v in obs.state[:6])
    # The age is corrected by this estimate (link/clock.py); a stock host sends no stamp to estimate from.
    clock = "no host stamp" if s.clock_offset_s is None else f"host clock {s.clock_offset_s:+.3f} s"
    return (
        f"seq {obs.seq}  {rate:5.1f} Hz  age {obs.age_s() * 1000:5.1f} ms  {clock}  decode p50 {dec:4.1f} ms  "
        f"bad {s.bad_total}  [{cams}]  arm {arm}"
    )


def run(args) -> int:
    from lekiwi_drift.config.robot import load_config
    from lekiwi_drift.link.client import RobotLink
    from lekiwi_drift.live_view import LiveViewError, live_view_from_args

    cfg = load_config(args.config)
    if args.host:
        cfg.host.address = args.host
    stop_local = None
    if args.serve:
        cfg, stop_local = _start_local_host(args.serve, cfg)
    link = RobotLink(cfg)
    live = None
    try:
        try:
            live = live_view_from_args(args)
        except LiveViewError as exc:
            print(f"lekiwi-drift watch: {exc}", file=sys.stderr)
            return 2
        link.connect()
        start = last = time.monotonic()
        last_count = link.stats.received
        while args.max_time is None or time.monotonic() - start < args.max_time:
            _wait(link, live, 0.5)
            now = time.monotonic()
            rate = (link.stats.received - last_count) / (now - last)
            last, last_count = now, link.stats.received
            print("\r" + _line(link, rate), end="", flush=True)
        print()
        print(
            f"received {link.stats.received} observations, malformed {dict(link.stats.bad) or 0}, "
            f"reconnects {link.stats.reconnects}"
        )
    finally:
        link.close()
        if live is not None:
            live.close()
        if stop_local is not None:
            stop_local()
    return 0


def _wait(link, live, seconds: float) -> None:
    """Sleep `seconds`; with a live view, show every new observation meanwhile (nothing is commanded)."""
    if live is None:
        time.sleep(seconds)
        return
    end = time.monotonic() + seconds
    seen = None
    while (left := end - time.monotonic()) > 0:
        obs = link.wait_for(seen, left)
        if obs is None:
            return
        live.add(obs)
        seen = obs
