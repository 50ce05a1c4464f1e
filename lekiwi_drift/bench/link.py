"""`lekiwi-drift bench link`: our RobotLink vs LeRobot's stock LeKiwiClient against one host, side by side.

A host serving three 640x480 fake cameras (with sensor-like noise, so JPEGs cost what real ones do) at
30 Hz runs in its own process on loopback. The two clients take turns in slices (A B A B ...) so machine
load hits both alike. Per client: sustained observation rate, decode+validate time p50/p99, observation
age p50/p99 (from the host's `_stamp`), and CPU time per observation (this process only, host excluded).
The stock client is driven through its own receive/parse/decode steps (the body of its get_observation),
timed around the parse+decode part, which is the part equivalent to our decode+validate.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import numpy as np

HELP = "observation link: our client vs the stock LeKiwiClient (rate, decode, age, CPU)"


def add_arguments(p) -> None:
    p.add_argument("--seconds", type=float, default=30.0, help="measured time per client (default 30)")
    p.add_argument("--slices", type=int, default=6, help="alternations between the clients (default 6)")
    p.add_argument("--size", default="640x480", help="camera size WxH (default 640x480)")
    p.add_argument("--plain", action="store_true", help="flat synthetic frames (no sensor noise)")
    p.add_argument("--out", type=Path, help="write the figures as JSON here")


def _serve(config_path: str, width: int, height: int, texture: bool, seconds: float) -> None:
    from lekiwi_drift.config.robot import load_config
    from lekiwi_drift.link.host import RobotHost
    from lekiwi_drift.robots.fake import FakeLeKiwi, FakeRobotConfig

    cfg = load_config(config_path)
    robot = FakeLeKiwi(FakeRobotConfig(tuple(cfg.camera_names), width, height, texture=texture))
    robot.connect()
    host = RobotHost(robot, cfg)
    host.run(max_time_s=seconds)
    host.close()


def _ours_slice(cfg, seconds: float) -> dict:
    from lekiwi_drift.link.client import RobotLink

    with RobotLink(cfg) as link:
        link.connect(timeout_s=30)
        s = link.stats
        n0, d0, a0 = s.received, len(s.decode_ms), len(s.age_ms)
        c0, t0 = time.process_time(), time.monotonic()
        time.sleep(seconds)
        n, wall, cpu = s.received - n0, time.monotonic() - t0, time.process_time() - c0
        decode, age = list(s.decode_ms)[d0:], list(s.age_ms)[a0:]
    return {"n": n, "wall": wall, "cpu": cpu, "decode": decode, "age": age}


def _stock_slice(cfg, seconds: float) -> dict:
    from lerobot.cameras.opencv import OpenCVCameraConfig
    from lerobot.robots.lekiwi import LeKiwiClient, LeKiwiClientConfig

    cams = {
        c.name: OpenCVCameraConfig(index_or_path=c.device, width=c.width, height=c.height, fps=30) for c in cfg.cameras
    }
    client = LeKiwiClient(
        LeKiwiClientConfig(
            remote_ip="127.0.0.1",
            port_zmq_cmd=cfg.host.port_cmd,
            port_zmq_observations=cfg.host.port_obs,
            cameras=cams,
            connect_timeout_s=30,
        )
    )
    client.connect()
    n, decode, age = 0, [], []
    c0, t0 = time.process_time(), time.monotonic()
    try:
        while time.monotonic() - t0 < seconds:
            frames = client._poll_and_get_latest_message()
            if frames is None:
                continue
            t = time.perf_counter()
            obs = client._parse_observation(frames)
            if obs is None:
                continue
            stamp = obs.get("_stamp")
            client._remote_state_from_obs(obs)
            decode.append((time.perf_counter() - t) * 1000.0)
            if stamp is not None:
                age.append((time.time() - stamp) * 1000.0)
            n += 1
        wall, cpu = time.monotonic() - t0, time.process_time() - c0
    finally:
        client.disconnect()
    return {"n": n, "wall": wall, "cpu": cpu, "decode": decode, "age": age}


def _summary(slices: list[dict]) -> dict:
    n = sum(s["n"] for s in slices)
    wall = sum(s["wall"] for s in slices)
    cpu = sum(s["cpu"] for s in slices)
    decode = np.array([d for s in slices for d in s["decode"]])
    age = np.array([a for s in slices for a in s["age"]])
    pct = lambda a, q: float(np.percentile(a, q)) if a.size else float("nan")  # noqa: E731
    return {
        "observations": n,
        "rate_hz": n / wall,
        "decode_p50_ms": pct(decode, 50),
        "decode_p99_ms": pct(decode, 99),
        "age_p50_ms": pct(age, 50),
        "age_p99_ms": pct(age, 99),
        "cpu_ms_per_obs": 1000.0 * cpu / max(n, 1),
    }


def _print_table(ours: dict, stock: dict) -> None:
    rows = [
        ("observation rate (Hz)", "rate_hz", "{:.1f}"),
        ("decode+validate p50 (ms)", "decode_p50_ms", "{:.2f}"),
        ("decode+validate p99 (ms)", "decode_p99_ms", "{:.2f}"),
        ("observation age p50 (ms)", "age_p50_ms", "{:.1f}"),
        ("observation age p99 (ms)", "age_p99_ms", "{:.1f}"),
        ("CPU per observation (ms)", "cpu_ms_per_obs", "{:.2f}"),
    ]
    print(f"{'':28s} {'RobotLink':>11s} {'stock':>11s} {'ours/stock':>11s}")
    for label, key, fmt in rows:
        ratio = ours[key] / stock[key] if stock[key] else float("nan")
        print(f"{label:28s} {fmt.format(ours[key]):>11s} {fmt.format(stock[key]):>11s} {ratio:>11.2f}")
    print(f"{'observations':28s} {ours['observations']:>11d} {stock['observations']:>11d}")


def run(args) -> int:
    import logging

    import yaml

    from lekiwi_drift.config.robot import load_config
    from lekiwi_drift.link.ports import free_loopback_ports

    # The stock client logs every empty poll at INFO on the root logger; keep the table readable.
    logging.getLogger().setLevel(logging.WARNING)
    width, height = (int(v) for v in args.size.lower().split("x"))
    port_cmd, port_obs = free_loopback_ports(2)
    tmp = Path(tempfile.mkdtemp(prefix="bench-link-"))
    config_path = tmp / "lekiwi.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "cameras": [{"name": n, "width": width, "height": height} for n in ("front", "wrist", "top")],
                "host": {"address": "127.0.0.1", "bind": "127.0.0.1", "port_cmd": port_cmd, "port_obs": port_obs},
            }
        )
    )
    cfg = load_config(config_path)
    slice_s = args.seconds / args.slices
    proc = mp.get_context("spawn").Process(
        target=_serve, args=(str(config_path), width, height, not args.plain, 2 * args.seconds + 60.0), daemon=True
    )
    proc.start()
    print(
        f"host: 3 cameras {width}x{height} at 30 Hz ({'flat' if args.plain else 'sensor-noise'} frames); "
        f"{args.slices} slices of {slice_s:.1f} s per client, alternating (one client connected at a time: "
        "a PUSH socket deals messages round-robin to its peers)"
    )
    ours_slices, stock_slices = [], []
    try:
        for i in range(2 * args.slices):
            fn = _ours_slice if (i % 4) in (0, 3) else _stock_slice  # A B B A: each gets early and late slots
            (ours_slices if fn is _ours_slice else stock_slices).append(fn(cfg, slice_s))
            print(
                f"  slice {i + 1}/{2 * args.slices} ({'RobotLink' if fn is _ours_slice else 'stock'}) done", flush=True
            )
    finally:
        proc.terminate()
        proc.join(5)
    ours, theirs = _summary(ours_slices), _summary(stock_slices)
    print()
    _print_table(ours, theirs)
    if args.out:
        args.out.write_text(
            json.dumps({"robotlink": ours, "stock": theirs, "size": args.size, "texture": not args.plain}, indent=2)
        )
    return 0
