"""Tables and plots for `bench toy`: mean +- std over seeds, a markdown table and two PNGs."""

from __future__ import annotations

import statistics
from pathlib import Path

# (key, column header, lower is better?) in table order.
METRICS = (
    ("ed_dim_mean", "ED per dim", True),
    ("ed_arm", "ED arm", True),
    ("ed_gripper", "ED gripper", True),
    ("ed_base", "ED base", True),
    ("ed_joint", "ED joint", True),
    ("mode_weight_err", "mode-weight err", True),
    ("mode_consistency", "y/theta consistent", False),
    ("switch_w1_steps", "switch W1 (steps)", True),
    ("gripper_crisp", "gripper at 0/100", False),
)


def summarise(rows: dict[str, list[dict]]) -> dict[str, dict]:
    """{row: {metric: [mean, std], "n": seeds, "diverged": count}} over the per-seed metric dicts."""
    out = {}
    for name, per_seed in rows.items():
        entry: dict = {"n": len(per_seed), "diverged": sum(bool(m.get("diverged")) for m in per_seed)}
        for key, _, _ in METRICS:
            vals = [m[key] for m in per_seed]
            entry[key] = [statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0]
        dims = [m["ed_per_dim"] for m in per_seed]
        entry["ed_per_dim"] = [statistics.fmean(col) for col in zip(*dims, strict=True)]
        out[name] = entry
    return out


def format_table(summary: dict[str, dict]) -> str:
    head = "| method | " + " | ".join(h for _, h, _ in METRICS) + " |"
    sep = "|---|" + "---|" * len(METRICS)
    lines = [head, sep]
    for name, entry in summary.items():
        cells = []
        for key, _, _ in METRICS:
            mean, std = entry[key]
            cells.append(f"{mean:.3f}" if entry["n"] == 1 else f"{mean:.3f} ± {std:.3f}")
        label = name if not entry["diverged"] else f"{name} ({entry['diverged']} diverged)"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_plots(summary: dict[str, dict], examples: dict, contexts, out: Path) -> list[Path]:
    """toy_grouping_metrics.png (1500x900: six bar panels, mean +- std over seeds, value at each bar end,
    drift rows blue and the rest orange; dashed line = the true sampler) and toy_grouping_samples.png
    (1300 wide, one row per method: 24 seed-0 sample chunks for the held-out context closest to 50/50,
    overlaid per action channel)."""
    from matplotlib.collections import LineCollection

    from lekiwi_drift.bench.toy_data import GRIPPER, THETA_VEL, Y_VEL, left_probability
    from lekiwi_drift.charts import PALETTE, figure, hbars, save

    names = [n for n in summary if n != "true sampler"]
    colors = [PALETTE[0] if n.startswith("drift") else PALETTE[1] for n in names]
    shown = ("ed_dim_mean", "ed_joint", "mode_weight_err", "mode_consistency", "switch_w1_steps", "gripper_crisp")
    fig = figure(
        1500,
        900,
        "Toy grouping study: mean ± std over seeds on held-out contexts (dashed line: fresh true samples, the floor)",
    )
    axes = fig.subplots(2, 3, sharey=True).flat
    for ax, key in zip(axes, shown, strict=True):
        header, lower = next((h, lo) for k, h, lo in METRICS if k == key)
        hbars(
            ax,
            names,
            [[summary[n][key][0]] for n in names],
            errors=[summary[n][key][1] for n in names],
            ref=summary["true sampler"][key][0],
            colors=colors,
            value_labels=True,
        )
        ax.set_title(f"{header} ({'lower' if lower else 'higher'} is better)", fontsize=10)
    paths = [save(fig, out / "toy_grouping_metrics.png")]

    p_left = left_probability(contexts)
    c = int((p_left - 0.5).abs().argmin())
    rows = ["true sampler"] + [n for n in examples if n != "true sampler"]
    channels = (
        (Y_VEL, "y.vel (m/s)", (-0.25, 0.25)),
        (THETA_VEL, "theta.vel (deg/s)", (-40.0, 40.0)),
        (GRIPPER, "gripper (0-100)", (-20.0, 120.0)),
    )
    height = 60 + 110 * len(rows)
    fig = figure(
        1300, height, f"24 samples (seed 0) for one held-out context, P(left) = {float(p_left[c]):.2f}", layout=None
    )
    # 270 px on the left for the method names, 62 px on top for the two title lines, 25 px below for the
    # step axis
    fig.suptitle(fig.get_suptitle(), y=1 - 6 / height, va="top")
    fig.subplots_adjust(left=270 / 1300, right=0.99, top=1 - 62 / height, bottom=25 / height, wspace=0.12, hspace=0.12)
    grid = fig.subplots(len(rows), 3, sharex=True, squeeze=False)
    for r, name in enumerate(rows):
        chunks = examples[name][c, :24]
        for col, (dim, label, (lo, hi)) in enumerate(channels):
            ax = grid[r][col]
            # one line per sample over the chunk's steps; one collection per panel, not 24 Line2D artists,
            # keeps the 24-panel figure quick to draw
            curves = chunks[..., dim].tolist()
            ax.add_collection(
                LineCollection(
                    [list(enumerate(cv)) for cv in curves],
                    linewidths=0.8,
                    colors=[PALETTE[k % len(PALETTE)] for k in range(len(curves))],
                )
            )
            ax.set_xlim(0, len(curves[0]) - 1)
            ax.set_ylim(lo, hi)
            ax.set_yticks([lo, hi])
            if lo < 0 < hi:
                ax.axhline(0, color="#c8c8c8", linewidth=0.8)
            if r == 0:
                ax.set_title(label, fontsize=10)
            if col == 0:  # the method's name, right-aligned left of the y tick labels
                ax.annotate(
                    name,
                    (0, 0.5),
                    xycoords="axes fraction",
                    xytext=(-34, 0),
                    textcoords="offset points",
                    ha="right",
                    va="center",
                    fontsize=9,
                )
            ax.tick_params(labelsize=8)
    paths.append(save(fig, out / "toy_grouping_samples.png"))
    return paths
