"""`lekiwi-drift run`: run a policy preset on the robot (or the simulated robot) at 30 Hz.

    lekiwi-drift run --policy drift                      # no ./lekiwi.yaml and no --host: starts the sim
    lekiwi-drift run --policy fm10 --sim --episodes 20 --max-time 30
    lekiwi-drift run --policy drift --host 192.168.1.42  # the real LeKiwi (host running on the Pi)
    lekiwi-drift run --policy path/to/my_preset.yaml --mode sync
    lekiwi-drift run --policy drift --sim --episodes 10 --record data/rollouts --video

Space or Esc: emergency stop (base stopped, arm held). Ctrl-C: safe stop and exit. Telemetry goes to
runs/<timestamp>/telemetry.jsonl; a summary per episode is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

from lekiwi_drift.live_view import add_display_arguments
from lekiwi_drift.sim.scene import SCENE_HELP, parse_scene


def add_parser(sub) -> None:
    p = sub.add_parser(
        "run",
        help="run a policy preset on the robot or the sim (30 Hz control loop)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--policy", default="drift", help="preset name (policies/NAME.yaml) or a preset file (default: drift)"
    )
    p.add_argument("--config", help="robot config YAML (default: ./lekiwi.yaml)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--sim", action="store_true", help="start the simulated robot in this process")
    where.add_argument("--host", help="the robot host's address (overrides host.address)")
    p.add_argument("--max-time", type=float, default=60.0, help="seconds per episode (default: 60)")
    p.add_argument("--episodes", type=int, default=1, help="episodes to run (default: 1)")
    p.add_argument("--mode", choices=("sync", "async"), help="override the preset's mode")
    p.add_argument("--item", default="salt_bottle", help="sim: the requested item (default: salt_bottle)")
    p.add_argument(
        "--seed", type=int, default=0, help="sim: seed of the first episode's scene jitter (then +1 each); see --scene"
    )
    p.add_argument("--scene", type=parse_scene, default=0, metavar="N|random", help="sim: " + SCENE_HELP)
    p.add_argument(
        "--latency",
        metavar="PROFILE",
        help="lockstep sim: charge inference latency in sim time, so the outcome does not depend on this "
        "machine's load: measured | paper-laptop | paper-gpu | <ms> (control/sim_time.py)",
    )
    p.add_argument(
        "--clock",
        choices=("lockstep", "realtime"),
        default="lockstep",
        help="sim clock (default: lockstep: one command = one 1/30 s step, so a busy machine "
        "slows the sim instead of the robot falling behind)",
    )
    p.add_argument(
        "--video",
        action="store_true",
        help="save an MP4 of each episode (three cameras, time, chunk boundaries) in the run directory",
    )
    p.add_argument(
        "--record",
        metavar="DIR",
        help="save what the robot saw and the commands it was sent as a LeRobotDataset in DIR, one "
        "episode per run episode (appends to a rollout dataset already there; record/rollout.py)",
    )
    p.add_argument("--no-auto-success", action="store_true", help="sim: do not end an episode on `_success`")
    p.add_argument("--runs-dir", default="runs", help="where runs/<timestamp>/ goes (default: ./runs)")
    p.add_argument("--quiet", action="store_true", help="no live status line")
    add_display_arguments(p)
    p.set_defaults(run=run)


def _robot_config(args):
    """(config, start the sim?, why)."""
    from lekiwi_drift.config.robot import DEFAULT_CONFIG_NAME, load_config

    if args.sim:
        return load_config(args.config), True, "--sim"
    if args.host:
        cfg = load_config(args.config)
        cfg.host.address = args.host
        return cfg, False, f"--host {args.host}"
    if args.config or (Path.cwd() / DEFAULT_CONFIG_NAME).exists():
        cfg = load_config(args.config)
        return cfg, False, cfg.source
    return load_config(None), True, f"no robot configured (no ./{DEFAULT_CONFIG_NAME}, no --host)"


class _Printer:
    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.tty = sys.stdout.isatty()
        self._last = 0.0

    def __call__(self, status) -> None:
        if self.quiet:
            return
        if self.tty:
            print("\r" + status.line[:200].ljust(120), end="", flush=True)
        elif time.monotonic() - self._last > 5.0:  # a log file gets a line every 5 s, not a flood
            self._last = time.monotonic()
            print(status.line, flush=True)

    def end(self) -> None:
        if self.tty and not self.quiet:
            print()


def run(args) -> int:
    from lekiwi_drift.control.keys import EstopKeys
    from lekiwi_drift.control.preset import load_preset
    from lekiwi_drift.control.runtime import PolicyRuntime
    from lekiwi_drift.control.session import RobotSession, SessionError, SimSpec
    from lekiwi_drift.live_view import LiveViewError, live_view_from_args
    from lekiwi_drift.policy.checkpoint import PolicyMismatchError
    from lekiwi_drift.record.recorder import DatasetError

    if args.episodes < 1 or args.max_time <= 0:
        print("lekiwi-drift run: --episodes must be >= 1 and --max-time > 0", file=sys.stderr)
        return 2
    preset = load_preset(args.policy)
    if args.mode:
        preset.mode = args.mode
    if args.no_auto_success:
        preset.end_on_success = False
    if args.latency and (args.host or args.clock != "lockstep"):
        print(
            "lekiwi-drift run: --latency charges latency in sim time; it needs the lockstep sim "
            "(--sim, --clock lockstep)",
            file=sys.stderr,
        )
        return 2
    if args.record:
        from lekiwi_drift.record.recorder import DatasetError
        from lekiwi_drift.record.rollout import check_rollout_dir

        try:
            check_rollout_dir(args.record)
        except DatasetError as exc:
            print(f"lekiwi-drift run: {exc}", file=sys.stderr)
            return 2
    cfg, start_sim, why = _robot_config(args)
    # The checkpoint is checked against the robot's cameras and vector sizes before anything moves.
    print(f"loading policy preset {preset.name} ({preset.source}) ...", flush=True)
    try:
        runtime = PolicyRuntime.load(preset, cfg)
    except (PolicyMismatchError, FileNotFoundError) as exc:
        print(f"lekiwi-drift run: {exc}", file=sys.stderr)
        return 2
    print(runtime.describe())
    print(f"warm-up chunk: {runtime.warmup_ms:.1f} ms; mode {preset.mode}, {preset.control_hz:g} Hz")

    sim = None
    if start_sim:
        w, h = preset.sim_wh()
        sim = SimSpec(item=args.item, seed=args.seed, clock=args.clock, size=f"{w}x{h}", scene=args.scene)
        scene = "a new layout per seed" if args.scene is None else f"scene {args.scene} jittered by seed {args.seed}"
        print(f"{why}: the simulated LeKiwi ({args.item}, {scene})")
    else:
        print(f"robot: {cfg.host.address} ({why})")

    run_dir = Path(args.runs_dir) / time.strftime("%Y%m%d-%H%M%S")
    session = RobotSession(cfg, sim=sim, latency=args.latency, run_dir=run_dir)
    results = []
    recorder = live = None
    try:
        first = session.open(print)
        if args.record:
            recorder = _open_recorder(args, preset, runtime, run_dir, first)
        live = live_view_from_args(args, preset.control_hz)
        loop = session.add_policy(
            preset.name, runtime, video_dir=run_dir if args.video else None, recorder=recorder, live=live
        )
        if session.latency is not None:
            print(f"inference latency charged in sim time: {session.latency.name}")
        print(f"joint limits from {loop.limits_source}; telemetry: {loop.telemetry.path}")
        print("Space/Esc: emergency stop   Ctrl-C: stop and exit")
        stop = threading.Event()
        printer = _Printer(args.quiet)
        for i in range(args.episodes):
            if session.is_sim:
                session.reset(args.item, args.seed + i, args.scene)
            elif i > 0:
                if input("reset the scene, then Enter to start the next episode (q + Enter to quit): ").strip() == "q":
                    break
            with EstopKeys(session.stop, on_quit=stop.set):
                result = session.run_episode(preset.name, args.max_time, stop=stop, on_status=printer)
            printer.end()
            results.append(result)
            _print_episode(result, i, args, preset, session)
            if recorder is not None:
                _save_rollout(recorder, result, args.seed + i if session.is_sim else None)
            if result.interrupted or result.outcome in ("estop", "stale") or stop.is_set():
                break
    except (SessionError, DatasetError, LiveViewError) as exc:
        print(f"lekiwi-drift run: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: robot stopped")
    finally:
        session.close()
        if recorder is not None:
            recorder.close()
        if live is not None:
            live.close()
    _write_summary(run_dir, preset, runtime, args, results)
    return 0 if results and all(r.outcome not in ("error", "stale") for r in results) else 1


def _open_recorder(args, preset, runtime, run_dir: Path, first):
    """The rollout dataset, with cameras at the size the robot sends (from its first observation)."""
    from lekiwi_drift.record.rollout import RolloutRecorder, RolloutSource

    shapes = {name: img.shape[:2] for name, img in first.images.items()}
    source = RolloutSource(
        policy=preset.name,
        preset_file=str(preset.source),
        checkpoint=str(runtime.checkpoint_dir),
        checkpoint_hash=runtime.checkpoint_hash,
        mode=preset.mode,
        latency=args.latency,
        run_dir=str(run_dir),
    )
    recorder = RolloutRecorder(args.record, preset.task, preset.control_hz, shapes, source).open()
    had = recorder.num_episodes
    print(f"recording rollouts to {args.record} ({'appending to ' + str(had) + ' episode(s)' if had else 'new'})")
    return recorder


def _save_rollout(recorder, result, seed: int | None) -> None:
    from lekiwi_drift.progress import Spinner

    frames = recorder.frames
    with Spinner(f"saving episode {recorder.num_episodes} ({frames} frames) to {recorder.root}"):
        saved = recorder.save(result.outcome, seed=seed, duration_s=round(result.duration_s, 3))
    if saved is not None:
        print(f"recorded episode {saved[0]} ({saved[1]} frames) in {recorder.root}", flush=True)


def _print_episode(result, i: int, args, preset, session) -> None:
    if result.telemetry.get("video"):
        print(f"video: {result.telemetry['video']}")
    t = result.telemetry
    seed = f" seed {args.seed + i}" if session.is_sim else ""
    # Late/skipped actions need a wall clock; in sim time they are zero by construction: not printed.
    timing = (
        f"sim time {t['ticks'] / preset.control_hz:.1f} s, latency charged p50 {t['charged_ms_p50']:.0f} ms"
        if session.latency is not None
        else f"{t['hz']:.1f} Hz, jitter p99 {t['jitter_p99_ms']:.1f} ms, "
        f"lateness p99 {t['lateness_ms_p99']:.1f} ms, overruns {t['overruns']}, "
        f"skipped ticks {t['skipped_ticks']}, late {t['late_actions']}, skipped {t['skipped_actions']}"
    )
    print(
        f"episode {i + 1}/{args.episodes}{seed}: {result.outcome} in {result.duration_s:.1f} s"
        f"{' (' + result.error + ')' if result.error else ''}; chunks {t['chunks']}, infer p50 "
        f"{t['infer_ms_p50']:.1f} ms, stall {t['stall_ticks']}, dropped {t['dropped_actions']}, "
        f"boundary jump max {t['boundary_jump_arm_deg_max']:.1f} deg, {timing}",
        flush=True,
    )


def _write_summary(run_dir: Path, preset, runtime, args, results) -> None:
    if not results:
        return
    scored = preset.end_on_success and all(r.auto_success is not None for r in results)
    if scored:  # the sim's detector ended the successful episodes; anything else is no success
        n_ok = sum(r.outcome == "success" for r in results)
        print(f"{preset.name}: {n_ok}/{len(results)} success (auto-scored by the sim's success detector)")
    else:
        why = "--no-auto-success" if any(r.auto_success is not None for r in results) else "no success detector"
        print(
            f"{preset.name}: {len(results)} episode(s), not scored ({why}); score real trials with "
            "`lekiwi-drift trials`"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.json").write_text(
        json.dumps(
            {
                "preset": preset.name,
                "preset_file": preset.source,
                "checkpoint": str(runtime.checkpoint_dir),
                "checkpoint_hash": runtime.checkpoint_hash,
                "mode": preset.mode,
                "item": args.item,
                "first_seed": args.seed,
                "scene": args.scene,
                "latency": args.latency,
                "max_time_s": args.max_time,
                "episodes": [asdict(r) for r in results],
            },
            indent=2,
            default=str,
        )
    )
    print(f"run summary: {run_dir / 'run.json'}")
