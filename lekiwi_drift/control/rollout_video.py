"""A rollout as people want to see it: an MP4 of the three cameras side by side, time and chunk boundaries marked.

`ControlLoop` hands every tick's observation to a `RolloutVideo` (when the run asked for videos); at the
end of the episode `save()` names the file after the outcome. The video is H.264 in yuv420p (what every
browser, phone and slide deck plays), written with PyAV, so no `ffmpeg` binary is needed. It plays at
real-time speed on the episode's own clock (sim time in a sim-time episode): every `every`-th tick is a
frame, stamped with its tick. A red bar at the top marks a frame where a new chunk took over (a chunk
that landed on a skipped tick marks the next frame, so none is lost); the last frame, captioned with the
outcome, is held for a second.

MP4, not GIF: an episode's GIF was tens of MB of 256-colour frames that could not be seeked; the MP4 is a
small fraction of that in full colour. (GitHub shows neither inline from a repository link; the trials
report links the file.)

Encoding runs in a thread of its own: the control loop only draws the frame (a resize and a line of
text) and queues it, so an encoder hiccup never delays a command. The episode's frames are encoded while
it runs, so memory holds a few frames, not the episode.
"""

from __future__ import annotations

import os
import queue
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lekiwi_drift.link.wire import Observation

BAR_PX = 4
STRIP_PX = 14  # the black strip above the cameras that holds the time and the caption
BAR_COLOR = (230, 40, 40)
CRF = 23  # x264's default quality; the bar and text stay crisp at it
_DONE = None  # the queue's end-of-episode marker


class _Encoder:
    """One episode's MP4, written by a thread from a queue of (tick, RGB frame)."""

    def __init__(self, path: Path, hz: float, every: int, size: tuple[int, int]):
        import av

        self.path = path
        self.error: BaseException | None = None
        self._queue: queue.Queue = queue.Queue()
        self._container = av.open(str(path), mode="w", format="mp4")
        rate = Fraction(hz).limit_denominator(1000)
        self._stream = self._container.add_stream("libx264", rate=rate / every)
        self._stream.width, self._stream.height = size
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(CRF), "preset": "veryfast"}
        # Stamps in ticks: a frame's time is its tick / hz, whatever `every` is.
        self._stream.codec_context.time_base = 1 / rate
        self._thread = threading.Thread(target=self._run, name="rollout-video", daemon=True)
        self._thread.start()

    def put(self, tick: int, frame: np.ndarray) -> None:
        self._queue.put((tick, frame))

    def _run(self) -> None:
        import av

        try:
            while (item := self._queue.get()) is not _DONE:
                tick, rgb = item
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts, frame.time_base = tick, self._stream.codec_context.time_base
                self._container.mux(self._stream.encode(frame))
        except BaseException as exc:  # noqa: BLE001 - reported by close(); the episode must not die of it
            self.error = exc
            while self._queue.get() is not _DONE:  # drain, so close() is not left waiting
                pass

    def close(self) -> None:
        """Flush and close the file; raises what went wrong while encoding."""
        self._queue.put(_DONE)
        self._thread.join()
        try:
            if self.error is None:
                self._container.mux(self._stream.encode(None))
        finally:
            self._container.close()
        if self.error is not None:
            raise RuntimeError(f"writing the rollout video {self.path} failed: {self.error}") from self.error


class RolloutVideo:
    def __init__(self, out_dir: str | Path, hz: float = 30.0, every: int = 2, max_width: int = 768):
        """`every`: one frame per this many ticks (2: 15 frames/s at 30 Hz); `max_width`: wider rows of
        cameras are scaled down to this."""
        # PyAV is imported here, in the caller's thread, not on the loop's first tick: an import in the loop
        # thread can deadlock on the import lock with the inference thread importing at the same time.
        import av  # noqa: F401

        self.out_dir = Path(out_dir)
        self.hz, self.every, self.max_width = hz, every, max_width
        self._encoder: _Encoder | None = None
        self._last: tuple[int, Image.Image] | None = None  # held back: save() captions it
        self._ticks = 0
        self._new_chunk = False

    def start(self) -> None:
        """A new episode (an unsaved one is dropped)."""
        self._discard()
        self._ticks, self._new_chunk = 0, False

    def add(
        self, obs: Observation, t_s: float, new_chunk: bool = False, cameras: tuple[str, ...] | None = None
    ) -> None:
        """One control tick: `t_s` seconds into the episode; `new_chunk`: a chunk was installed this tick."""
        self._new_chunk |= new_chunk
        tick = self._ticks
        self._ticks += 1
        if tick % self.every or not obs.images:
            return
        canvas = self._frame(obs, cameras, t_s)
        if self._encoder is None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            # Named after the outcome only at the end: written under a hidden name until then.
            path = self.out_dir / f".rollout-{os.getpid()}-{id(self)}.mp4"
            self._encoder = _Encoder(path, self.hz, self.every, canvas.size)
        elif canvas.size != self._last[1].size:  # a camera changed size mid-episode: keep the first size
            canvas = canvas.resize(self._last[1].size, Image.BILINEAR)
        if self._last is not None:
            self._encoder.put(self._last[0], np.asarray(self._last[1]))
        self._last = (tick, canvas)

    def _frame(self, obs: Observation, cameras: tuple[str, ...] | None, t_s: float) -> Image.Image:
        names = cameras or tuple(obs.images)
        img = Image.fromarray(np.concatenate([obs.images[n] for n in names if n in obs.images], axis=1))
        if img.width > self.max_width:
            img = img.resize((self.max_width, round(self.max_width * img.height / img.width)), Image.BILINEAR)
        # H.264 in yuv420p needs even dimensions: the canvas is rounded up, the spare pixel stays black.
        w, h = img.width + img.width % 2, img.height + STRIP_PX + (img.height + STRIP_PX) % 2
        canvas = Image.new("RGB", (w, h), (0, 0, 0))
        canvas.paste(img, (0, STRIP_PX))
        draw = ImageDraw.Draw(canvas)
        draw.text((3, 1), f"t {t_s:5.1f} s", fill=(255, 255, 255))
        if self._new_chunk:
            draw.rectangle((0, STRIP_PX, img.width - 1, STRIP_PX + BAR_PX - 1), fill=BAR_COLOR)
            self._new_chunk = False
        return canvas

    def save(self, name: str, caption: str = "") -> Path | None:
        """Write `<name>.mp4` (the last frame held for a second, with `caption`); None if no frames."""
        if self._encoder is None or self._last is None:
            self._discard()
            return None
        tick, last = self._last
        if caption:
            ImageDraw.Draw(last).text((last.width // 3, 1), caption, fill=(255, 220, 0))
        held = np.asarray(last)
        for k in range(max(1, round(self.hz / self.every)) + 1):
            self._encoder.put(tick + k * self.every, held)
        encoder, self._encoder, self._last = self._encoder, None, None
        path = self.out_dir / f"{name}.mp4"
        try:
            encoder.close()
        except Exception:
            encoder.path.unlink(missing_ok=True)
            raise
        os.replace(encoder.path, path)
        return path

    def _discard(self) -> None:
        if self._encoder is not None:
            try:
                self._encoder.close()
            except RuntimeError:
                pass  # the file is being thrown away anyway
            self._encoder.path.unlink(missing_ok=True)
        self._encoder, self._last = None, None
