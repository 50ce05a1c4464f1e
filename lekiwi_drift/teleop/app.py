"""Assemble a teleop run from its options: robot link (or an in-process sim host), action source,
keyboard, recorder; run the session; always tear everything down in reverse order.

The recorder is closed in a `finally`, so Ctrl-C, SIGTERM (turned into KeyboardInterrupt by the CLI)
or an exception still finalize the dataset; completed episodes were durable before that anyway (see
record/recorder.py), which is what protects them from SIGKILL.
"""

from __future__ import annotations

import logging
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from lekiwi_drift.config.robot import ConfigError, load_config
from lekiwi_drift.link.client import LinkTimeout, RobotLink
from lekiwi_drift.live_view import live_view_from_args
from lekiwi_drift.teleop.session import SessionConfig, SessionResult, TeleopSession

log = logging.getLogger(__name__)

TELEOPS = ("leader", "scripted", "keyboard")


@dataclass
class TeleopOptions:
    config: str | None = None
    host: str | None = None  # override host.address
    sim: bool = False  # drive a simulated LeKiwi (in-process host unless --host is given)
    teleop: str | None = None  # leader | scripted | keyboard (default: scripted in sim, else leader)
    clock: str = "realtime"  # in-process sim host: realtime or lockstep
    item: str = "salt_bottle"
    seed: int = 0
    scene: int | None = None  # sim: fixed layout that the seeds jitter; None: every seed its own layout
    expert_noise: float = 0.0  # sim, scripted: DART perturbation scale of the executed actions
    only_successes: bool = False  # sim: keep only episodes that succeed (a failed one is re-tried on the next seed)
    size: str | None = "320x240"  # in-process sim camera size (None: the config's)
    record: str | None = None  # dataset directory
    task: str = "pick the salt bottle and put it in the basket"
    episodes: int = 1
    episode_time_s: float = 60.0
    reset_time_s: float = 10.0
    resume: bool = False
    fps: int = 30
    max_time_s: float | None = None  # live teleop: stop after this long
    keyboard: bool = True
    streaming_encoding: bool = False
    repo_id: str | None = None  # the dataset's repo id (default local/<directory name>)
    push_to_hub: bool = False  # push the finished dataset to the Hub as repo_id
    private: bool | None = None  # with push_to_hub: create a private repo (None: the Hub's default)
    display_data: bool = False  # live view in a Rerun viewer (live_view.py)
    display_ip: str | None = None  # stream to a viewer there instead of spawning one
    display_port: int = 9876
    display_save: str | None = None  # write the live view to this .rrd file


class TeleopError(RuntimeError):
    """A setup problem with a message that says how to fix it."""


def _connect(cfg, local: bool) -> tuple[RobotLink, object]:
    link = RobotLink(cfg)
    try:
        obs = link.connect()
    except LinkTimeout as exc:
        fix = (
            ""
            if local
            else " Start it on the robot with `lekiwi-drift host` (or `lekiwi-drift host --robot "
            "sim --expert` for a sim), pass --host ADDRESS, or drive a local sim with --sim."
        )
        raise TeleopError(f"cannot reach the robot host: {exc}{fix}") from None
    return link, obs


def _make_source(kind: str, cfg, keyboard, stack: ExitStack):
    from lekiwi_drift.teleop import sources

    if kind == "scripted":
        return sources.ScriptedSource(keyboard)
    if kind == "keyboard":
        if keyboard is None:
            raise TeleopError("--teleop keyboard needs keys: run it in a terminal, without --no-keyboard")
        return sources.KeyboardSource(keyboard)
    from lekiwi_drift.teleop.leader import LeaderArm

    leader = LeaderArm(cfg)
    leader.connect()
    stack.callback(leader.disconnect)
    if keyboard is None:
        log.warning("no keyboard: the base will not move (only the leader arm drives)")
    return sources.LeaderSource(leader, keyboard or _StillBase())


class _StillBase:
    def velocity(self) -> dict[str, float]:
        return {"x.vel": 0.0, "y.vel": 0.0, "theta.vel": 0.0}

    def moving(self) -> bool:
        return False


def run_teleop(opts: TeleopOptions, out=None) -> SessionResult:
    out = out if out is not None else sys.stdout
    cfg = load_config(opts.config)
    if opts.host:
        cfg.host.address = opts.host
    if opts.episodes < 1 or opts.episode_time_s <= 0 or opts.reset_time_s < 0:
        raise ConfigError("--episodes must be >= 1, --episode-time > 0 and --reset-time >= 0")
    if opts.teleop is not None and opts.teleop not in TELEOPS:
        raise ConfigError(f"--teleop {opts.teleop!r}: choose one of {', '.join(TELEOPS)}")
    if opts.push_to_hub:
        from lekiwi_drift.hub import check_repo_id

        if not opts.record or not opts.repo_id:
            raise ConfigError("--push-to-hub needs --record DIR and --repo-id OWNER/NAME")
        check_repo_id(opts.repo_id)
    if opts.record:
        # Importing LeRobot's dataset code takes seconds (torch, datasets, av): do it before the host and
        # link start, so it cannot starve them of the GIL mid-session.
        import lerobot.datasets  # noqa: F401
    with ExitStack() as stack:
        local = None
        if opts.sim and not opts.host:
            from lekiwi_drift.sim.local import start_local_sim_host

            local = start_local_sim_host(
                cfg, item=opts.item, seed=opts.seed, clock=opts.clock, size=opts.size, expert=True, scene=opts.scene
            )
            stack.callback(local.stop)
            cfg = local.config
        link, obs = _connect(cfg, local is not None)
        stack.callback(link.close)
        is_sim = "_sim_time" in obs.extras
        lockstep = obs.extras.get("_clock") == "lockstep"
        kind = opts.teleop or ("scripted" if is_sim or opts.sim else "leader")
        if opts.expert_noise and kind != "scripted":
            raise TeleopError(
                "--expert-noise perturbs the scripted sim expert only (it labels the states the "
                "noise leads to); drop it, or use --sim --teleop scripted"
            )
        if kind == "scripted" and not is_sim:
            raise TeleopError(
                "--teleop scripted needs a simulated robot (the expert reads privileged sim state); "
                "use --sim, or --teleop leader on the real robot"
            )

        keyboard = None
        if opts.keyboard:
            from lekiwi_drift.teleop.keyboard import TerminalKeyboard

            keyboard = stack.enter_context(TerminalKeyboard())  # restores the terminal on the way out
            if keyboard.mode == "none":  # not a terminal: no keys to read
                keyboard = None
        source = _make_source(kind, cfg, keyboard, stack)

        recorder = None
        if opts.record:
            from lekiwi_drift.record.recorder import EpisodeRecorder, RecorderConfig

            missing = [n for n in cfg.camera_names if n not in obs.images]
            if missing:
                raise TeleopError(f"the host serves no {missing} camera(s); the config lists {cfg.camera_names}")
            shapes = {n: obs.images[n].shape[:2] for n in cfg.camera_names}
            recorder = EpisodeRecorder(
                RecorderConfig(
                    root=Path(opts.record),
                    task=opts.task,
                    repo_id=opts.repo_id,
                    fps=opts.fps,
                    resume=opts.resume,
                    streaming_encoding=opts.streaming_encoding,
                ),
                shapes,
            )
            recorder.open()
            stack.callback(recorder.close)  # runs before the link closes: finalize first
            out.write(
                f"recording into {opts.record} ({recorder.num_episodes} episodes there already), task {opts.task!r}\n"
            )

        session_cfg = SessionConfig(
            fps=float(opts.fps),
            lockstep=lockstep,
            sim=is_sim,
            item=opts.item,
            seed=opts.seed,
            scene=opts.scene,
            expert_noise=opts.expert_noise,
            only_successes=opts.only_successes,
            episodes=opts.episodes,
            episode_time_s=opts.episode_time_s,
            reset_time_s=opts.reset_time_s,
            max_time_s=opts.max_time_s,
        )
        out.write(
            f"teleop: {source.name}; {'lockstep sim' if lockstep else 'real time'}"
            f"{'; ' + keyboard.mode_text if keyboard is not None else '; no keyboard'}\n"
        )
        live = live_view_from_args(opts, opts.fps)
        if live is not None:
            stack.callback(live.close)
        session = TeleopSession(session_cfg, link, source, keyboard=keyboard, recorder=recorder, out=out, live=live)
        result = session.run()
        if recorder is not None:
            out.write(
                f"saved {len(result.saved)} episode(s) this session ({sum(result.saved)} frames); "
                f"{opts.record} holds {recorder.num_episodes} episodes ({result.stopped_by})\n"
            )
    # After the ExitStack: the recorder is closed and the dataset finalized on disk before anything uploads.
    if opts.push_to_hub and result.saved:
        from lekiwi_drift.hub import push_dataset

        plan = push_dataset(opts.record, opts.repo_id, private=opts.private)
        out.write(f"pushed {plan.summary()}\n")
    return result
