"""Minimal PNG charts drawn with Pillow, for the benches' docs figures.

The project venv has Pillow (a LeRobot dependency) but not matplotlib, so the benches draw their two
kinds of figure themselves: horizontal (optionally stacked) bar panels with error bars and a reference
line, and small line panels for sample trajectories. Horizontal bars keep long method names readable
without rotated text.
"""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))
Box = tuple[int, int, int, int]  # left, top, right, bottom


def _font(size: int):
    return ImageFont.load_default(size=size)


class Canvas:
    """A white image with a title; panels are drawn into boxes of it."""

    def __init__(self, width: int, height: int, title: str = ""):
        self.image = Image.new("RGB", (width, height), "white")
        self.draw = ImageDraw.Draw(self.image)
        if title:
            self.draw.text((width // 2, 8), title, fill="black", font=_font(16), anchor="mt")

    def grid(self, rows: int, cols: int, top: int = 34, pad: int = 12) -> list[Box]:
        w, h = self.image.size
        cw, ch = (w - pad) // cols, (h - top - pad) // rows
        return [(pad + c * cw, top + r * ch, pad + (c + 1) * cw - pad, top + (r + 1) * ch - pad)
                for r in range(rows) for c in range(cols)]

    def save(self, path) -> None:
        self.image.save(path)


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    return [lo + (hi - lo) * i / n for i in range(n + 1)]


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"


def hbar_panel(canvas: Canvas, box: Box, labels: list[str], segments: list[list[float]], title: str,
               errors: list[float] | None = None, ref: float | None = None, seg_names: list[str] | None = None,
               bar_colors: list[tuple] | None = None, label_width: int = 190, value_labels: bool = False) -> None:
    """One horizontal bar per label; segments[i] are stacked left to right (segment k in PALETTE[k],
    named by seg_names); a one-segment bar takes bar_colors[i]. errors are +- whiskers at the bar end;
    ref is a dashed vertical reference line."""
    d, f = canvas.draw, _font(12)
    left, top, right, bottom = box
    d.text(((left + right) // 2, top), title, fill="black", font=_font(13), anchor="mt")
    x0, x1, y0, y1 = left + label_width, right - 10, top + 22, bottom - 30
    if seg_names:
        y1 -= 18
    totals = [sum(s) for s in segments]
    hi_vals = [t + (errors[i] if errors else 0.0) for i, t in enumerate(totals)] + ([ref] if ref is not None else [])
    lo = min(0.0, *hi_vals)
    hi = max(hi_vals) * 1.08 or 1.0
    sx = lambda v: x0 + (v - lo) / (hi - lo) * (x1 - x0)  # noqa: E731
    for t in _ticks(lo, hi):
        d.line([(sx(t), y0), (sx(t), y1)], fill=(225, 225, 225))
        d.text((sx(t), y1 + 4), _fmt(t), fill="black", font=f, anchor="mt")
    d.line([(sx(0), y0), (sx(0), y1)], fill="black")
    slot = (y1 - y0) / max(1, len(labels))
    for i, (label, segs) in enumerate(zip(labels, segments, strict=True)):
        yc = y0 + (i + 0.5) * slot
        ya, yb = yc - 0.35 * slot, yc + 0.35 * slot
        d.text((x0 - 6, yc), label, fill="black", font=f, anchor="rm")
        acc = 0.0
        for k, v in enumerate(segs):
            color = bar_colors[i] if bar_colors and len(segs) == 1 else PALETTE[k % len(PALETTE)]
            d.rectangle([sx(acc), ya, sx(acc + v), yb], fill=color)
            acc += v
        if errors:
            e = errors[i]
            d.line([(sx(acc - e), yc), (sx(acc + e), yc)], fill="black", width=2)
            for x in (sx(acc - e), sx(acc + e)):
                d.line([(x, yc - 4), (x, yc + 4)], fill="black", width=2)
        if value_labels:
            d.text((sx(acc + (errors[i] if errors else 0)) + 4, yc), _fmt(acc), fill="black", font=f, anchor="lm")
    if ref is not None:
        for y in range(int(y0), int(y1), 8):
            d.line([(sx(ref), y), (sx(ref), y + 4)], fill="black", width=1)
    if seg_names:
        x = x0
        for k, name in enumerate(seg_names):
            d.rectangle([x, y1 + 24, x + 10, y1 + 34], fill=PALETTE[k])
            d.text((x + 14, y1 + 29), name, fill="black", font=f, anchor="lm")
            x += 20 + int(d.textlength(name, font=f))


def lines_panel(canvas: Canvas, box: Box, curves: list[list[float]], title: str,
                y_range: tuple[float, float], row_label: str = "") -> None:
    """Overlaid curves (one per sample) over x = 0..len-1, within a fixed y range."""
    d, f = canvas.draw, _font(11)
    left, top, right, bottom = box
    if title:
        d.text(((left + right) // 2, top), title, fill="black", font=_font(12), anchor="mt")
    x0, x1, y0, y1 = left + 40, right - 4, top + (16 if title else 2), bottom - 2
    lo, hi = y_range
    sy = lambda v: y1 - (min(max(v, lo), hi) - lo) / (hi - lo) * (y1 - y0)  # noqa: E731
    d.rectangle([x0, y0, x1, y1], outline=(180, 180, 180))
    if lo < 0 < hi:
        d.line([(x0, sy(0)), (x1, sy(0))], fill=(200, 200, 200))
    for v in (lo, hi):
        d.text((x0 - 3, sy(v)), _fmt(v), fill="black", font=f, anchor="rm")
    if row_label:
        d.text((left - 2, (y0 + y1) // 2), row_label, fill="black", font=f, anchor="rm")
    for k, curve in enumerate(curves):
        n = len(curve)
        pts = [(x0 + i / max(1, n - 1) * (x1 - x0), sy(v)) for i, v in enumerate(curve)]
        d.line(pts, fill=PALETTE[k % len(PALETTE)], width=1)
