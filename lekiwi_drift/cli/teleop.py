"""`lekiwi-drift teleop`: drive the LeKiwi (SO-101 leader + keyboard, or the sim's scripted expert) and
optionally record demonstrations as a LeRobotDataset. Argument parsing only; see lekiwi_drift/teleop/."""

from __future__ import annotations

import signal
import sys

from lekiwi_drift.live_view import add_display_arguments
from lekiwi_drift.sim.scene import SCENE_HELP, parse_scene

DEFAULT_TASK = "pick the salt bottle and put it in the basket"


def add_parser(sub) -> None:
    p = sub.add_parser("teleop", help="drive the robot (leader arm + keyboard, or sim expert); --record demos")
    p.add_argument("--config", help="robot config YAML (default: ./lekiwi.yaml, else the packaged example)")
    p.add_argument("--host", help="override host.address (the robot's IP, or a separately started sim host)")
    p.add_argument(
        "--teleop",
        choices=("leader", "scripted", "keyboard"),
        default=None,
        help="leader: SO-101 arm + keyboard base (default on the robot); scripted: the sim's expert "
        "(default with --sim); keyboard: base only, the arm holds",
    )
    p.add_argument("--no-keyboard", dest="keyboard", action="store_false", help="do not read keys from the terminal")
    p.add_argument("--fps", type=int, default=30, help="control and recording rate (default 30)")
    p.add_argument("--max-time", type=float, default=None, help="live teleop: stop after this many seconds")
    sim = p.add_argument_group("sim")
    sim.add_argument(
        "--sim",
        action="store_true",
        help="drive a simulated LeKiwi (starts an in-process sim host unless --host is given)",
    )
    sim.add_argument(
        "--clock",
        choices=("realtime", "lockstep"),
        default="realtime",
        help="in-process sim clock; lockstep: one tick per action, deterministic recordings",
    )
    sim.add_argument("--item", default="salt_bottle", help="requested item: salt_bottle, matcha_tin, chocolate_bar")
    sim.add_argument("--seed", type=int, default=0, help="seed of episode 0's scene jitter (episode e: seed + e)")
    sim.add_argument("--scene", type=parse_scene, default=0, metavar="N|random", help=SCENE_HELP)
    sim.add_argument(
        "--expert-noise",
        type=float,
        default=0.0,
        metavar="SCALE",
        help="scripted expert: perturb the executed actions in short bursts and record the expert's "
        "clean action (DART recovery demos; 1.0 = the documented default size, 0 = off)",
    )
    sim.add_argument(
        "--only-successes",
        action="store_true",
        help="discard an episode that ends without `_success` and record the next seed instead",
    )
    sim.add_argument("--size", default="320x240", metavar="WxH", help="in-process sim camera size")
    rec = p.add_argument_group("recording")
    rec.add_argument("--record", metavar="DATASET", help="record a LeRobotDataset (v3) into this directory")
    rec.add_argument("--task", default=DEFAULT_TASK, help=f"language instruction (default: {DEFAULT_TASK!r})")
    rec.add_argument("--episodes", type=int, default=1, help="episodes to record (default 1)")
    rec.add_argument("--episode-time", type=float, default=60.0, help="seconds per episode (default 60)")
    rec.add_argument(
        "--reset-time",
        type=float,
        default=10.0,
        help="seconds between real episodes to reset the scene (default 10; the sim resets itself)",
    )
    rec.add_argument("--resume", action="store_true", help="append episodes to an existing dataset")
    rec.add_argument(
        "--streaming-encoding", action="store_true", help="encode videos while recording instead of after each episode"
    )
    hub = p.add_argument_group("hub")
    hub.add_argument("--repo-id", help="the dataset's repo id OWNER/NAME (default local/<directory name>)")
    hub.add_argument(
        "--push-to-hub",
        action="store_true",
        help="push the dataset to the Hugging Face Hub as --repo-id once recording ends (needs `hf auth login`)",
    )
    hub.add_argument("--private", action="store_true", default=None, help="with --push-to-hub: a private repo")
    add_display_arguments(p)
    p.set_defaults(run=run)


def _raise_interrupt(signum, _frame):
    raise KeyboardInterrupt  # SIGTERM: unwind like Ctrl-C so the dataset is finalized


def run(args) -> int:
    from lekiwi_drift.hub import HubError
    from lekiwi_drift.live_view import LiveViewError
    from lekiwi_drift.record.recorder import DatasetError
    from lekiwi_drift.teleop.app import TeleopError, TeleopOptions, run_teleop
    from lekiwi_drift.teleop.sources import SourceError

    opts = TeleopOptions(
        config=args.config,
        host=args.host,
        sim=args.sim,
        teleop=args.teleop,
        clock=args.clock,
        item=args.item,
        seed=args.seed,
        scene=args.scene,
        expert_noise=args.expert_noise,
        only_successes=args.only_successes,
        size=args.size,
        record=args.record,
        task=args.task,
        episodes=args.episodes,
        episode_time_s=args.episode_time,
        reset_time_s=args.reset_time,
        resume=args.resume,
        fps=args.fps,
        max_time_s=args.max_time,
        keyboard=args.keyboard,
        streaming_encoding=args.streaming_encoding,
        repo_id=args.repo_id,
        push_to_hub=args.push_to_hub,
        private=args.private,
        display_data=args.display_data,
        display_ip=args.display_ip,
        display_port=args.display_port,
        display_save=args.display_save,
    )
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        run_teleop(opts)
    except (TeleopError, SourceError, DatasetError, HubError, LiveViewError) as exc:
        print(f"lekiwi-drift teleop: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
