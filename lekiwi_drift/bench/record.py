"""`lekiwi-drift bench record`: what recording adds to a teleop tick.

Runs the teleop tick (scripted expert action -> clamp -> lockstep step over the real wire, against an
in-process sim host) for N ticks three ways: plain teleop, recording with LeRobot's default path
(PNG frames written by background threads, videos encoded after the episode) and recording with
streaming encoding (frames fed to background video encoders). Reports the main-thread cost of
`EpisodeRecorder.add()` per tick (what the 30 Hz loop pays; target <= 3 ms), the whole tick with and
without recording (the background work competes for the same CPU cores), and the end-of-episode save.
Mode `record-parallel` saves with LeRobot's forked encoding pool instead of encoding in process (what
`RecorderConfig.parallel_encoding` turns off: it forks a multithreaded process), to show what that costs.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

HELP = "per-tick overhead of recording a LeRobotDataset vs plain teleop (sim, lockstep)"
MODES = ("plain", "record", "record-streaming", "record-parallel")


def add_arguments(parser) -> None:
    parser.add_argument("--size", default="640x480", metavar="WxH", help="sim camera size (default 640x480)")
    parser.add_argument("--ticks", type=int, default=150, help="ticks per mode (default 150 = 5 s of data)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}")
    parser.add_argument("--config", help="robot config YAML (camera names)")


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def measure(mode: str, size: str, ticks: int, config: str | None = None) -> dict:
    import lerobot.datasets  # noqa: F401  (import before timing)

    from lekiwi_drift.config.robot import load_config
    from lekiwi_drift.link.client import RobotLink
    from lekiwi_drift.record.recorder import EpisodeRecorder, RecorderConfig
    from lekiwi_drift.sim.local import start_local_sim_host
    from lekiwi_drift.teleop.sources import ScriptedSource, action_vector, clamp_action

    cfg = load_config(config)
    local = start_local_sim_host(cfg, clock="lockstep", size=size, expert=True)
    link = RobotLink(local.config)
    tmp = Path(tempfile.mkdtemp(prefix="bench_record_"))
    rec = None
    try:
        obs = link.connect()
        if mode != "plain":
            shapes = {n: obs.images[n].shape[:2] for n in local.config.camera_names}
            rec = EpisodeRecorder(
                RecorderConfig(
                    root=tmp / "ds",
                    task="bench",
                    streaming_encoding=mode == "record-streaming",
                    parallel_encoding=mode == "record-parallel",
                ),
                shapes,
            ).open()
        source = ScriptedSource()
        add_ms, tick_ms = [], []
        for _ in range(ticks):
            t0 = time.perf_counter()
            action = clamp_action(source.action(obs))
            if rec is not None:
                t1 = time.perf_counter()
                rec.add(obs.state, obs.images, action_vector(action))
                add_ms.append((time.perf_counter() - t1) * 1000.0)
            obs = link.step(action)
            tick_ms.append((time.perf_counter() - t0) * 1000.0)
        save_s = float("nan")
        if rec is not None:
            t0 = time.perf_counter()
            rec.save_episode()
            save_s = time.perf_counter() - t0
        return {"mode": mode, "add_ms": add_ms, "tick_ms": tick_ms, "save_s": save_s}
    finally:
        if rec is not None:
            rec.close()
        link.close()
        local.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def format_rows(results: list[dict], ticks: int) -> str:
    rows = [
        f"{'mode':<17} {'add p50':>8} {'add p95':>8} {'add max':>8} {'tick p50':>9} {'tick p95':>9} {'save':>7}",
        f"{'':<17} {'(ms)':>8} {'(ms)':>8} {'(ms)':>8} {'(ms)':>9} {'(ms)':>9} {'(s)':>7}",
    ]
    for r in results:
        a, t = r["add_ms"], r["tick_ms"]
        rows.append(
            f"{r['mode']:<17} {_pct(a, 50):8.2f} {_pct(a, 95):8.2f} {max(a) if a else float('nan'):8.2f} "
            f"{_pct(t, 50):9.2f} {_pct(t, 95):9.2f} {r['save_s']:7.2f}"
        )
    rows.append(
        f"({ticks} ticks = {ticks / 30:.1f} s of 30 fps data per mode; save = end-of-episode "
        "save_episode + finalize + reopen)"
    )
    return "\n".join(rows)


def run(args) -> int:
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad:
        print(f"unknown mode(s) {bad}; choose from {', '.join(MODES)}")
        return 2
    results = []
    for mode in modes:
        print(f"measuring {mode} ({args.ticks} ticks, cameras {args.size}) ...", flush=True)
        results.append(measure(mode, args.size, args.ticks, args.config))
    print(format_rows(results, args.ticks))
    return 0
