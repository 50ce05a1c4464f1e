"""`lekiwi-drift sim snapshot`: camera PNGs of a scene and a GIF of the expert solving it, for people.

Writes into the output folder:
  front.png, wrist.png, top.png   the three cameras at the start of the scene
  wrist_grasp.png                 the wrist camera the moment the fingers have closed on the item
  expert.gif                      the three cameras side by side, every GIF_EVERY-th tick, until success
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from lekiwi_drift.sim.config import CONTROL_HZ, SimConfig
from lekiwi_drift.sim.evaluate import EpisodeResult, run_episode
from lekiwi_drift.sim.expert import ScriptedExpert
from lekiwi_drift.sim.robot import SimLeKiwi

GIF_EVERY = 3  # ticks per GIF frame: 10 frames per second of sim time, played in real time
GIF_WIDTH = 960  # the three cameras side by side


@dataclass(frozen=True)
class SnapshotResult:
    files: list[Path]
    episode: EpisodeResult


def _strip(obs: dict, names: tuple[str, ...]) -> Image.Image:
    row = np.concatenate([obs[n] for n in names], axis=1)
    img = Image.fromarray(row)
    return img.resize((GIF_WIDTH, round(GIF_WIDTH * img.height / img.width)), Image.BILINEAR)


def write_snapshot(
    item: str, seed: int, out_dir: str | Path, width: int = 640, height: int = 480, time_limit_s: float = 30.0
) -> SnapshotResult:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = SimConfig(item=item, seed=seed, clock="lockstep", width=width, height=height)
    sim = SimLeKiwi(cfg)
    sim.connect()
    files: list[Path] = []
    gif: list[Image.Image] = []
    ticks = [0]
    grasp_saved = [False]

    def on_tick(s: SimLeKiwi, expert: ScriptedExpert) -> None:
        ticks[0] += 1
        want_grasp = not grasp_saved[0] and expert.phase == "lift"
        if ticks[0] % GIF_EVERY and not want_grasp:
            return
        obs = s.get_observation()
        if want_grasp:
            path = out / "wrist_grasp.png"
            Image.fromarray(obs["wrist"]).save(path)
            files.append(path)
            grasp_saved[0] = True
        gif.append(_strip(obs, cfg.camera_names))

    try:
        sim.handle_request({"op": "reset", "item": item, "seed": seed})
        obs = sim.get_observation()
        for name in cfg.camera_names:
            path = out / f"{name}.png"
            Image.fromarray(obs[name]).save(path)
            files.append(path)
        gif.append(_strip(obs, cfg.camera_names))
        episode = run_episode(sim, item, seed, time_limit_s, on_tick=on_tick)
        # Hold the last frame a moment so the result is visible when the GIF loops.
        gif.extend([gif[-1]] * 10)
        path = out / "expert.gif"
        gif[0].save(
            path,
            save_all=True,
            append_images=gif[1:],
            loop=0,
            duration=int(round(1000.0 * GIF_EVERY / CONTROL_HZ)),
            optimize=False,
        )
        files.append(path)
    finally:
        sim.disconnect()
    return SnapshotResult(files, episode)
