"""Record scripted-expert demonstrations in the simulated shop as a LeRobotDataset (v3).

This is how the quickstart checkpoints in this folder were made (see README.md here). It drives the
lockstep sim directly (no wire) with the privileged `ScriptedExpert`, and passes every camera frame
through the same JPEG round trip the wire applies (quality 90), so the policy trains on the images it
will see at run time. Only successful episodes are kept.

    .venv/bin/python policies/checkpoints/record_sim_demos.py --out data/sim_salt --episodes 40

Images are stored as PNG frames (`dtype: image`), not video: at 128x96 that is small, and decoding
PNGs on a 2-core CPU is much cheaper than decoding video during training.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

TASK = "pick up the salt bottle and place it in the basket"
CAMS = ("front", "wrist", "top")


def jpeg_round_trip(image: np.ndarray) -> np.ndarray:
    from lekiwi_drift.link.wire import encode_jpeg

    return cv2.imdecode(np.frombuffer(encode_jpeg(image), dtype=np.uint8), cv2.IMREAD_COLOR)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="dataset directory (must not exist)")
    p.add_argument("--episodes", type=int, default=40, help="successful episodes to keep")
    p.add_argument("--first-seed", type=int, default=1000, help="seeds count up from here (eval uses 0..19)")
    p.add_argument("--item", default="salt_bottle")
    p.add_argument("--size", default="128x96", help="camera WIDTHxHEIGHT (default 128x96)")
    p.add_argument("--time-limit", type=float, default=20.0, help="sim seconds per episode")
    args = p.parse_args()

    import lekiwi_drift.sim  # noqa: F401  (MUJOCO_GL=egl when headless)
    from lerobot.datasets import LeRobotDataset

    from lekiwi_drift.robots.features import STATE_KEYS
    from lekiwi_drift.sim.config import CONTROL_HZ, SimConfig
    from lekiwi_drift.sim.expert import ScriptedExpert
    from lekiwi_drift.sim.robot import SimLeKiwi

    width, height = (int(v) for v in args.size.lower().split("x"))
    task = TASK.replace("salt bottle", args.item.replace("_", " "))
    features = {
        f"observation.images.{c}": {"dtype": "image", "shape": (height, width, 3),
                                     "names": ["height", "width", "channels"]}
        for c in CAMS
    }
    features["observation.state"] = {"dtype": "float32", "shape": (9,), "names": list(STATE_KEYS)}
    features["action"] = {"dtype": "float32", "shape": (9,), "names": list(STATE_KEYS)}
    ds = LeRobotDataset.create(f"local/{Path(args.out).name}", fps=int(CONTROL_HZ), features=features,
                               root=args.out, robot_type="lekiwi", use_videos=False)
    sim = SimLeKiwi(SimConfig(item=args.item, clock="lockstep", width=width, height=height, camera_names=CAMS))
    sim.connect()
    kept, seed, t0 = 0, args.first_seed, time.monotonic()
    try:
        while kept < args.episodes:
            sim.handle_request({"op": "reset", "item": args.item, "seed": seed})
            expert = ScriptedExpert(sim)
            frames = []

            def step() -> None:
                """Record this tick's observation and the expert's action, then apply the action."""
                obs = sim.get_observation()
                action = expert.act()
                frame = {f"observation.images.{c}": jpeg_round_trip(obs[c]) for c in CAMS}
                frame["observation.state"] = np.array([obs[k] for k in STATE_KEYS], dtype=np.float32)
                frame["action"] = np.array([action[k] for k in STATE_KEYS], dtype=np.float32)
                frame["task"] = task
                frames.append(frame)
                sim.send_action(action)

            for _ in range(int(args.time_limit * CONTROL_HZ)):
                step()
                if sim.task.success:
                    break
            if sim.task.success:
                for _ in range(10):  # a few still frames after success teach the policy to stop there
                    step()
                for frame in frames:
                    ds.add_frame(frame)
                ds.save_episode()
                kept += 1
                print(f"seed {seed}: kept ({len(frames)} frames), {kept}/{args.episodes}, "
                      f"{time.monotonic() - t0:.0f} s", flush=True)
            else:
                print(f"seed {seed}: expert failed, skipped", flush=True)
            seed += 1
    finally:
        sim.disconnect()
        ds.finalize()  # without it the parquet files are unreadable
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
