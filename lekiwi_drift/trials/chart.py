"""The success-rate bar chart (PNG): one bar per policy, its Wilson 95 % interval as an error bar.

matplotlib draws it when it is installed (it is a declared dependency); where it is missing the same
chart is drawn with Pillow, which LeRobot already pulls in, so a report never fails for want of a plot
library.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Bar:
    label: str
    successes: int
    n: int
    low: float
    high: float

    @property
    def rate(self) -> float:
        return self.successes / self.n if self.n else 0.0


def draw(bars: list[Bar], title: str, path: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        _draw_pillow(bars, title, path)
        return
    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(bars), 3.6), dpi=120)
    rates = [b.rate for b in bars]
    err = [[r - b.low if b.n else 0 for r, b in zip(rates, bars)], [b.high - r if b.n else 0 for r, b in zip(rates, bars)]]
    drawn = ax.bar([b.label for b in bars], rates, color="#3a7ca5", yerr=err, capsize=6, ecolor="#333333")
    for rect, b in zip(drawn, bars):
        ax.text(rect.get_x() + rect.get_width() / 2, 0.02, f"{b.successes}/{b.n}", ha="center", va="bottom",
                color="white", fontweight="bold")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success rate (Wilson 95 % CI)")
    ax.set_title(title, fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _draw_pillow(bars: list[Bar], title: str, path: Path) -> None:
    from PIL import Image, ImageDraw, ImageFont

    bar_w, gap, left, right, top, bottom = 70, 40, 84, 20, 40, 50
    width = left + right + len(bars) * (bar_w + gap) + gap
    height = 380
    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=14)
    small = ImageFont.load_default(size=12)
    plot_h = height - top - bottom

    def y(v: float) -> float:  # rate 0..1 -> pixel row
        return top + plot_h * (1.0 - v / 1.05)

    d.text((width / 2, 12), title, fill="black", font=font, anchor="mt")
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):  # axis and grid
        d.line([(left, y(tick)), (width - right, y(tick))], fill="#e6e6e6")
        d.text((left - 8, y(tick)), f"{tick:.2f}", fill="black", font=small, anchor="rm")
    d.line([(left, top), (left, y(0))], fill="black")
    d.line([(left, y(0)), (width - right, y(0))], fill="black")
    d.text((6, top + plot_h / 2), "rate", fill="black", font=small, anchor="lm")
    for i, b in enumerate(bars):
        x0 = left + gap + i * (bar_w + gap)
        xc = x0 + bar_w / 2
        if b.n:
            d.rectangle([x0, y(b.rate), x0 + bar_w, y(0)], fill="#3a7ca5")
            d.line([(xc, y(b.low)), (xc, y(b.high))], fill="#333333", width=2)
            for v in (b.low, b.high):
                d.line([(xc - 8, y(v)), (xc + 8, y(v))], fill="#333333", width=2)
        d.text((xc, y(0) - 4), f"{b.successes}/{b.n}", fill="white" if b.rate > 0.08 else "black", font=small,
               anchor="mb")
        d.text((xc, y(0) + 8), b.label, fill="black", font=font, anchor="mt")
    d.text((width / 2, height - 14), "error bars: Wilson 95 % interval", fill="#555555", font=small, anchor="mm")
    img.save(path)
