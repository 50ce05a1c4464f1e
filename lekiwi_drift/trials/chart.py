"""The success-rate bar chart (PNG): one bar per policy, its Wilson 95 % interval as an error bar.
Drawn with matplotlib through lekiwi_drift.charts, like every chart of the project."""

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
    """success.png: 192 + 156 px per policy wide, 432 px high; bars = success rate, whiskers = the Wilson
    interval, k/n written at each bar's foot."""
    from lekiwi_drift.charts import figure, save

    fig = figure(192 + 156 * len(bars), 432)
    ax = fig.subplots()
    rates = [b.rate for b in bars]
    err = [
        [r - b.low if b.n else 0 for r, b in zip(rates, bars)],
        [b.high - r if b.n else 0 for r, b in zip(rates, bars)],
    ]
    drawn = ax.bar([b.label for b in bars], rates, color="#3a7ca5", yerr=err, capsize=6, ecolor="#333333")
    for rect, b in zip(drawn, bars):
        # white on the bar; black where the bar is too short to hold the text
        ax.text(
            rect.get_x() + rect.get_width() / 2,
            0.02,
            f"{b.successes}/{b.n}",
            ha="center",
            va="bottom",
            color="white" if b.rate > 0.08 else "black",
            fontweight="bold",
        )
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success rate (Wilson 95 % CI)")
    ax.set_title(title, fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    save(fig, path)
