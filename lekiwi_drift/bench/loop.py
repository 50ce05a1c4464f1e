"""`lekiwi-drift bench loop`: the control loop's timing, sync vs async, tiny and full-size policies.

The loop runs exactly as `lekiwi-drift run` runs it (ControlLoop, worker-thread inference, safety,
telemetry) against the fake LeKiwi served by a real in-process host over the real wire, in real time.
Policies have random weights (timing does not depend on them): the tiny test-size SmolVLA (chunk 10)
and the full-size SmolVLM2-500M shapes (`write_full_smolvlm`, chunk 50, 512x512 padded images).
Per run: tick jitter p50/p99 (|tick start - schedule|), achieved Hz, inference ms, stall ticks per
replan (ticks with no action to send), late actions per replan (sent more than half a period after
their slot), actions skipped per replan because the loop overran, and actions dropped per replan by
latency compensation (what a loop without it would have replayed late).
"""

from __future__ import annotations

import os
import platform
import socket
import tempfile
import threading
from pathlib import Path

HELP = "control loop timing: tick jitter, stall ticks and late actions per replan, Hz (sync vs async)"
CAMS = ("front", "wrist", "top")


def add_arguments(parser) -> None:
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per tiny-policy run (default 10)")
    parser.add_argument(
        "--full-seconds",
        type=float,
        default=20.0,
        help="seconds per full-size run (default 20: ~3 chunks at ~6 s each on a 2-core CPU)",
    )
    parser.add_argument("--no-full", action="store_true", help="skip the full-size policy")
    parser.add_argument("--tiny-size", default="128x96", help="camera size for the tiny runs (default 128x96)")
    parser.add_argument("--full-size", default="640x480", help="camera size for the full-size runs (default 640x480)")
    parser.add_argument("--device", default="cpu")


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _fake_host(size: str):
    """The fake LeKiwi behind a real RobotHost on loopback (real time, real wire)."""
    from lekiwi_drift.config.robot import load_config
    from lekiwi_drift.link.host import RobotHost
    from lekiwi_drift.robots.fake import FakeLeKiwi, FakeRobotConfig

    w, h = (int(v) for v in size.split("x"))
    cfg = load_config(None)
    cfg.host.address = cfg.host.bind = "127.0.0.1"
    cfg.host.port_cmd, cfg.host.port_obs = _free_ports(2)
    robot = FakeLeKiwi(FakeRobotConfig(camera_names=CAMS, width=w, height=h, texture=True))
    robot.connect()
    host = RobotHost(robot, cfg)
    thread = threading.Thread(target=host.run, name="bench-host", daemon=True)
    thread.start()
    return cfg, robot, host, thread


def _policy(full: bool, vlm_dir: Path, device: str, size: str):
    import torch
    from lerobot.policies.factory import make_pre_post_processors

    from lekiwi_drift.bench.latency_models import make_config
    from lekiwi_drift.policy.modeling_smolvla_drift import SmolVLADriftPolicy
    from lekiwi_drift.policy.offline_vlm import write_full_smolvlm, write_tiny_smolvlm

    (write_full_smolvlm if full else write_tiny_smolvlm)(vlm_dir)
    w, h = (int(v) for v in size.split("x"))
    torch.manual_seed(0)
    # The latency bench's config: the tiny test-size policy, or SmolVLA's defaults on the published VLM shapes.
    cfg = make_config(vlm_dir, tiny=not full, cameras=len(CAMS), height=h, width=w, device=device)
    policy = SmolVLADriftPolicy(cfg).to(device).eval()
    pre, post = make_pre_post_processors(
        cfg, dataset_stats=None, preprocessor_overrides={"device_processor": {"device": device}}
    )
    return policy, pre, post


def _runtime(policy, pre, post, sampler: str, label: str, device: str, warm_size, repeats: int = 3):
    from lekiwi_drift.control.preset import Preset
    from lekiwi_drift.control.runtime import PolicyRuntime

    c = policy.config
    c.sampler, c.flow_steps, c.keystone_samples, c.keystone_clusters = {
        "drift+KS8": ("drift", 10, 8, 4),
        "drift-1": ("drift", 10, 1, 4),
        "fm10": ("flow", 10, 1, 4),
    }[sampler]
    c.validate()
    preset = Preset(
        name=label,
        checkpoint="in-memory",
        sampler=c.sampler,
        flow_steps=c.flow_steps,
        keystone_samples=c.keystone_samples,
    )
    rt = PolicyRuntime(
        preset,
        policy,
        pre,
        post,
        {cam: f"observation.images.{cam}" for cam in CAMS},
        None,
        device,
        checkpoint_hash="random",
    )
    rt.warm_up(list(CAMS), repeats=repeats, size=warm_size)
    return rt


def _run(rt, mode: str, seconds: float, size: str) -> dict:
    from lekiwi_drift.control.session import RobotSession

    cfg, robot, host, thread = _fake_host(size)
    session = RobotSession(cfg)  # the same session object `run` and `trials` use
    try:
        session.open()
        rt.preset.mode = mode
        session.add_policy(rt.preset.name, rt)
        result = session.run_episode(rt.preset.name, max_time_s=seconds)
    finally:
        session.close(wait_s=60.0)  # a chunk still in flight must not share the CPU with the next run
        host.stop()
        thread.join(timeout=3)
        host.close()
        robot.disconnect()
    return result.telemetry


def _row(model: str, sampler: str, mode: str, t: dict) -> str:
    return (
        f"| {model} | {sampler} | {mode} | {t['infer_ms_p50']:.0f} | {t['hz']:.1f} | {t['jitter_p50_ms']:.2f} | "
        f"{t['jitter_p99_ms']:.2f} | {t['chunks']} | {t['stall_ticks_per_replan']:.1f} | "
        f"{t['late_actions_per_replan']:.1f} | {t['skipped_actions_per_replan']:.1f} | "
        f"{t['dropped_per_replan']:.1f} | {t['startup_ticks']} |"
    )


def run(args) -> int:
    import logging

    import torch

    logging.getLogger("lekiwi_drift.link.host").setLevel(logging.WARNING)  # one host per row: keep the table clean

    print(
        f"lekiwi-drift bench loop ({platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {args.device}); fake LeKiwi over the real wire, real time, 30 Hz"
    )
    print(
        "| policy | sampler | mode | infer p50 (ms) | Hz | jitter p50 (ms) | jitter p99 (ms) | chunks | "
        "stall ticks/replan | late actions/replan | skipped actions/replan | dropped/replan | startup ticks |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    tw, th = (int(v) for v in args.tiny_size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        policy, pre, post = _policy(False, Path(tmp) / "tiny_vlm", args.device, args.tiny_size)
        for sampler in ("drift+KS8", "fm10"):
            rt = _runtime(policy, pre, post, sampler, "tiny", args.device, (th, tw))
            for mode in ("sync", "async"):
                print(_row("tiny (chunk 10)", sampler, mode, _run(rt, mode, args.seconds, args.tiny_size)), flush=True)
        if not args.no_full:
            fw, fh = (int(v) for v in args.full_size.split("x"))
            policy, pre, post = _policy(True, Path(tmp) / "full_vlm", args.device, args.full_size)
            rt = _runtime(policy, pre, post, "drift-1", "full", args.device, (fh, fw), repeats=1)
            for mode in ("sync", "async"):
                t = _run(rt, mode, args.full_seconds, args.full_size)
                print(_row("full (chunk 50)", "drift-1", mode, t), flush=True)
    return 0
