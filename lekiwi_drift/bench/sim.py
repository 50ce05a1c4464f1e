"""`lekiwi-drift bench sim`: how fast the simulated LeKiwi runs on this machine.

Measures (1) physics: steps per second and real-time factor while the scripted expert works the task,
no cameras; (2) rendering: milliseconds per camera image at 320x240 and 640x480, with one shared
renderer and with one renderer per camera; (3) the real-time clock: the observation rate a host sees
with the three cameras (distinct frames per second from get_observation) and the real-time factor
the physics thread holds meanwhile.
"""

from __future__ import annotations

import os
import platform
import time

HELP = "simulator speed: physics steps/s, render ms per camera, real-time observation rate"
SIZES = ((320, 240), (640, 480))


def add_arguments(parser) -> None:
    parser.add_argument("--seconds", type=float, default=5.0, help="wall seconds per real-time run (default: 5)")
    parser.add_argument("--frames", type=int, default=20, help="frames per camera per render measurement (default: 20)")
    parser.add_argument("--episodes", type=int, default=3, help="expert episodes for the physics figure (default: 3)")


def bench_physics(episodes: int) -> dict:
    from lekiwi_drift.sim.config import SimConfig
    from lekiwi_drift.sim.evaluate import run_episode
    from lekiwi_drift.sim.robot import SimLeKiwi

    sim = SimLeKiwi(SimConfig(clock="lockstep", render=False))
    sim.connect()
    sim_s, wall_s = 0.0, 0.0
    for seed in range(episodes):
        t0 = time.perf_counter()
        ep = run_episode(sim, "salt_bottle", seed)
        wall_s += time.perf_counter() - t0
        sim_s += ep.sim_time
    sim.disconnect()
    steps = sim_s / sim.world.model.opt.timestep
    return {"steps_per_s": steps / wall_s, "rtf": sim_s / wall_s, "dt_ms": 1000 * sim.world.model.opt.timestep}


def bench_render(frames: int) -> dict:
    import mujoco

    from lekiwi_drift.sim.config import CAMERA_NAMES, SimConfig
    from lekiwi_drift.sim.render import CameraRig
    from lekiwi_drift.sim.world import SimWorld

    out = {}
    for w, h in SIZES:
        world = SimWorld(SimConfig(width=w, height=h))
        for shared in (True, False):
            rig = CameraRig(world.model, CAMERA_NAMES, w, h, shared=shared)
            rig.render(world.data)  # warm up: first frames upload textures
            t0 = time.perf_counter()
            for _ in range(frames):
                world.step_control_period()
                mujoco.mj_camlight(world.model, world.data)
                rig.render(world.data)
            out[(w, h, shared)] = 1000.0 * (time.perf_counter() - t0) / (frames * len(CAMERA_NAMES))
            rig.close()
    return out


def bench_realtime(seconds: float, width: int, height: int) -> dict:
    from lekiwi_drift.sim.config import SimConfig
    from lekiwi_drift.sim.robot import SimLeKiwi
    from lekiwi_drift.sim.world import HOME_ACTION

    # No frame-rate cap: this measures what the machine allows.
    sim = SimLeKiwi(SimConfig(clock="realtime", width=width, height=height, camera_fps=0.0))
    sim.connect()
    sim.get_observation()
    sim.send_action(HOME_ACTION | {"x.vel": 0.05, "theta.vel": 10.0})
    seen, last = 0, None
    t0, s0 = time.monotonic(), sim.clock()
    while time.monotonic() - t0 < seconds:
        obs = sim.get_observation()
        if obs["front"] is not last:  # a new frame set (the render thread replaces the dict each time)
            seen, last = seen + 1, obs["front"]
        time.sleep(0.001)  # a host polls; don't starve the render and physics threads of the GIL
    wall = time.monotonic() - t0
    rtf = (sim.clock() - s0) / wall
    lag = sim.physics_lag_events
    sim.disconnect()
    return {"obs_hz": seen / wall, "rtf": rtf, "lag_events": lag}


def run(args) -> int:
    import lekiwi_drift.sim  # noqa: F401  (picks MUJOCO_GL=egl on a headless machine)

    print(
        f"lekiwi-drift bench sim  ({platform.machine()}, {os.cpu_count()} CPUs, "
        f"MUJOCO_GL={os.environ.get('MUJOCO_GL', '')})"
    )
    phys = bench_physics(args.episodes)
    print(
        f"physics (expert episodes, no cameras, dt {phys['dt_ms']:.2f} ms): "
        f"{phys['steps_per_s']:,.0f} steps/s, real-time factor {phys['rtf']:.1f}"
    )
    rend = bench_render(args.frames)
    print("render, ms per camera image     shared renderer   renderer per camera")
    for w, h in SIZES:
        print(f"  {w}x{h:<4}                       {rend[(w, h, True)]:8.1f}          {rend[(w, h, False)]:8.1f}")
    print("real-time clock, 3 cameras, get_observation loop:")
    for w, h in SIZES:
        rt = bench_realtime(args.seconds, w, h)
        print(
            f"  {w}x{h:<4}  {rt['obs_hz']:5.1f} observations/s (distinct frames), physics real-time factor "
            f"{rt['rtf']:.3f}, lag resets {rt['lag_events']}"
        )
    return 0
