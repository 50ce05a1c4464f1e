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
    """toy_grouping_metrics.png (bars, mean +- std over seeds; dashed line = true sampler) and
    toy_grouping_samples.png (seed-0 samples for the held-out context closest to 50/50)."""
    from lekiwi_drift.bench.png_plot import PALETTE, Canvas, hbar_panel, lines_panel
    from lekiwi_drift.bench.toy_data import GRIPPER, THETA_VEL, Y_VEL, left_probability

    paths = []
    names = [n for n in summary if n != "true sampler"]
    colors = [PALETTE[0] if n.startswith("drift") else PALETTE[1] for n in names]
    shown = ("ed_dim_mean", "ed_joint", "mode_weight_err", "mode_consistency", "switch_w1_steps", "gripper_crisp")
    canvas = Canvas(1500, 900, "Toy grouping study: mean ± std over seeds on held-out contexts "
                               "(dashed line: fresh true samples, the floor)")
    for box, key in zip(canvas.grid(2, 3), shown, strict=True):
        header, lower = next((h, lo) for k, h, lo in METRICS if k == key)
        hbar_panel(canvas, box, names, [[summary[n][key][0]] for n in names],
                   f"{header} ({'lower' if lower else 'higher'} is better)",
                   errors=[summary[n][key][1] for n in names], ref=summary["true sampler"][key][0],
                   bar_colors=colors, label_width=230, value_labels=True)
    paths.append(out / "toy_grouping_metrics.png")
    canvas.save(paths[-1])

    p_left = left_probability(contexts)
    c = int((p_left - 0.5).abs().argmin())
    rows = ["true sampler"] + [n for n in examples if n != "true sampler"]
    channels = ((Y_VEL, "y.vel (m/s)", (-0.25, 0.25)), (THETA_VEL, "theta.vel (deg/s)", (-40.0, 40.0)),
                (GRIPPER, "gripper (0-100)", (-20.0, 120.0)))
    canvas = Canvas(1300, 60 + 110 * len(rows),
                    f"24 samples (seed 0) for one held-out context, P(left) = {float(p_left[c]):.2f}")
    boxes = canvas.grid(len(rows), 3, top=40, pad=6)
    for r, name in enumerate(rows):
        chunks = examples[name][c, :24]
        for col, (dim, label, y_range) in enumerate(channels):
            left, top, right, bottom = boxes[r * 3 + col]
            box = (left + (230 if col == 0 else 0), top, right, bottom)
            lines_panel(canvas, box, chunks[..., dim].tolist(), label if r == 0 else "", y_range,
                        row_label=name if col == 0 else "")
    paths.append(out / "toy_grouping_samples.png")
    canvas.save(paths[-1])
    return paths
