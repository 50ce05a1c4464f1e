"""The one PNG chart renderer: matplotlib on its Agg canvas, for the bench figures and the trials chart.

Figures are built as `matplotlib.figure.Figure` objects with an explicit `FigureCanvasAgg`, never
through pyplot: no backend is selected globally, no window can open (SSH, CI, a TUI owning the
terminal), and nothing is left in pyplot's figure registry. Sizes are given in pixels so each chart
keeps a fixed size (the docs and the tests rely on it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

DPI = 100
# matplotlib's default colour cycle ("tab10"), named so stacked segments and bar colours can index it.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def figure(width_px: int, height_px: int, title: str = "", layout: str | None = "constrained"):
    """An empty figure of exactly width_px x height_px pixels. Constrained layout by default; a grid of
    many small panels passes layout=None and places them itself (the layout solver costs seconds there)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI, layout=layout)
    FigureCanvasAgg(fig)
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


def save(fig, path: Path) -> Path:
    """Write the PNG at the figure's own size (no tight bounding box: it would change the pixel size)."""
    fig.savefig(path, dpi=DPI)
    return Path(path)


def fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"


def hbars(
    ax,
    labels: Sequence[str],
    segments: Sequence[Sequence[float]],
    *,
    errors: Sequence[float] | None = None,
    ref: float | None = None,
    seg_names: Sequence[str] | None = None,
    colors: Sequence[str] | None = None,
    value_labels: bool = False,
) -> None:
    """One horizontal bar per label, the first label on top. segments[i] are stacked left to right
    (segment k in PALETTE[k], named in a legend by seg_names); single-segment bars take colors[i].
    errors: +- whiskers at the bar end; ref: a dashed vertical reference line; value_labels: the bar's
    total written past its end. Horizontal bars keep long method names readable without rotation."""
    ys = range(len(labels))
    totals = [0.0] * len(labels)
    n_segs = max((len(s) for s in segments), default=0)
    for k in range(n_segs):
        widths = [s[k] if k < len(s) else 0.0 for s in segments]
        color = list(colors) if colors is not None and n_segs == 1 else PALETTE[k % len(PALETTE)]
        ax.barh(ys, widths, left=totals, height=0.7, color=color, label=seg_names[k] if seg_names else None)
        totals = [t + w for t, w in zip(totals, widths, strict=True)]
    if errors is not None:
        ax.errorbar(totals, ys, xerr=list(errors), fmt="none", ecolor="black", capsize=4, elinewidth=1.2)
    if ref is not None:
        ax.axvline(ref, color="black", linestyle="--", linewidth=1)
    if value_labels:
        ends = [t + (errors[i] if errors is not None else 0.0) for i, t in enumerate(totals)]
        for y, end, total in zip(ys, ends, totals, strict=True):
            ax.annotate(fmt(total), (end, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
        ax.margins(x=0.12)  # room for the labels past the longest bar
    ax.set_yticks(list(ys), list(labels))
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8)
    ax.grid(axis="x", color="#e6e6e6")
    ax.set_axisbelow(True)
    if seg_names:
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(seg_names), frameon=False, fontsize=9)
