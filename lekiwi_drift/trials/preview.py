"""Camera previews as terminal text: each character cell shows two pixels with the upper half block
'▀' (foreground = upper pixel, background = lower pixel). A frame is downscaled by plain index sampling
(no filtering): a 24x9-cell preview needs 24x18 pixels, so sampling is cheap enough for a few Hz and
the preview only has to show that the camera works and roughly what it sees."""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.color import Color
from rich.segment import Segment
from rich.style import Style

HALF_BLOCK = "▀"


def downscale(image: np.ndarray, cols: int, rows: int) -> np.ndarray:
    """HxWx3 uint8 -> (2*rows)x(cols)x3 by nearest-neighbour sampling."""
    h, w = image.shape[:2]
    ys = np.linspace(0, h - 1, 2 * rows).astype(np.intp)
    xs = np.linspace(0, w - 1, cols).astype(np.intp)
    return np.ascontiguousarray(image[ys][:, xs, :3])


class HalfBlockImage:
    """A Rich renderable of a frame, `cols` cells wide and `rows` cells high."""

    def __init__(self, image: np.ndarray, cols: int = 24, rows: int = 9):
        self.pixels = downscale(np.asarray(image), cols, rows)
        self.cols, self.rows = cols, rows

    def lines(self) -> list[list[Segment]]:
        px = self.pixels.tolist()  # Python ints: building Styles from numpy scalars is several times slower
        out = []
        for r in range(self.rows):
            top, bottom = px[2 * r], px[2 * r + 1]
            out.append(
                [
                    Segment(HALF_BLOCK, Style(color=Color.from_rgb(*t), bgcolor=Color.from_rgb(*b)))
                    for t, b in zip(top, bottom)
                ]
            )
        return out

    def __rich_console__(self, console: Any, options: Any):
        for line in self.lines():
            yield from line
            yield Segment.line()
