"""A rollout as people want to see it: the three cameras side by side, time and chunk boundaries marked.

`ControlLoop` hands every tick's observation to a `RolloutVideo` (when the run asked for videos); at the
end of the episode `save()` writes an animated GIF (it plays inline in Markdown and on GitHub) with
every `every`-th tick at real-time speed. A red bar at the top marks a tick where a new chunk took over.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lekiwi_drift.link.wire import Observation

BAR_PX = 4


class RolloutVideo:
    def __init__(self, out_dir: str | Path, hz: float = 30.0, every: int = 3, max_width: int = 768):
        self.out_dir = Path(out_dir)
        self.hz, self.every, self.max_width = hz, every, max_width
        self._frames: list[Image.Image] = []
        self._ticks = 0
        self._new_chunk = False

    def start(self) -> None:
        self._frames, self._ticks, self._new_chunk = [], 0, False

    def add(
        self, obs: Observation, t_s: float, new_chunk: bool = False, cameras: tuple[str, ...] | None = None
    ) -> None:
        """One control tick: `t_s` seconds into the episode; `new_chunk`: a chunk was installed this tick."""
        self._new_chunk |= new_chunk
        self._ticks += 1
        if (self._ticks - 1) % self.every or not obs.images:
            return
        names = cameras or tuple(obs.images)
        row = np.concatenate([obs.images[n] for n in names if n in obs.images], axis=1)
        img = Image.fromarray(row)
        if img.width > self.max_width:
            img = img.resize((self.max_width, round(self.max_width * img.height / img.width)), Image.BILINEAR)
        canvas = Image.new("RGB", (img.width, img.height + 14), (0, 0, 0))
        canvas.paste(img, (0, 14))
        draw = ImageDraw.Draw(canvas)
        draw.text((3, 1), f"t {t_s:5.1f} s", fill=(255, 255, 255))
        if self._new_chunk:
            draw.rectangle((0, 14, img.width, 14 + BAR_PX), fill=(230, 40, 40))
            self._new_chunk = False
        self._frames.append(canvas)

    def save(self, name: str, caption: str = "") -> Path | None:
        """Write `<name>.gif` (the last frame held for a second, with `caption`); None if no frames."""
        if not self._frames:
            return None
        last = self._frames[-1].copy()
        if caption:
            ImageDraw.Draw(last).text((last.width // 3, 1), caption, fill=(255, 220, 0))
        frames = self._frames + [last] * max(1, int(self.hz / self.every))
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"{name}.gif"
        frames[0].save(
            path,
            save_all=True,
            append_images=frames[1:],
            loop=0,
            duration=int(round(1000.0 * self.every / self.hz)),
            optimize=False,
        )
        self.start()
        return path
