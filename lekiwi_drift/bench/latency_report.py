"""Table, target checks and the stacked-bar PNG for `bench latency`."""

from __future__ import annotations

from pathlib import Path

PARTS = ("prefix", "expert", "keystone", "other")


def format_table(result: dict) -> str:
    rows, meta = result["rows"], result["meta"]
    gpu = meta["device"].startswith("cuda")
    memory = all("peak_mib" in r for r in rows.values())  # absent with --no-memory
    head = ["variant", "chunk ms (median)", "min", "prefix", "expert", "KeyStone", "other"]
    if memory:  # CPU: each variant's own process (bench/memory.py); +N: its chunk's rise over the built model
        head.append("peak GPU alloc (MiB)" if gpu else "peak RSS, own process (MiB)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in rows.items():
        cells = [
            f"{'ours' if r['who'] == 'ours' else 'LeRobot'} {name.removeprefix('stock ')}",
            *(f"{r[k]:.1f}" for k in ("total", "min_total", *PARTS)),
        ]
        if memory:
            cells.append(f"{r['peak_mib']:.0f}" + ("" if gpu else f" (+{r['chunk_mib']:.0f})"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _verdict(ok: bool, value: float, limit: str) -> str:
    return f"{value:.3f} ({'met' if ok else 'MISSED'}; target {limit})"


def checks(result: dict) -> list[str]:
    """The issue's targets, each with its measured value, and the prefix/expert account of the ratio."""
    rows, meta = result["rows"], result["meta"]
    ks = next(n for n in rows if n.startswith("drift+KS") and not n.endswith("stock pass"))
    t = {n: r["total"] for n, r in rows.items()}
    drift, fm10 = rows["drift-1"], rows["FM-10"]
    out = [
        "ours FM-10 / stock FM-10 = " + _verdict(t["FM-10"] <= t["stock FM-10"], t["FM-10"] / t["stock FM-10"], "<= 1"),
        "ours FM-1 / stock FM-1 = " + _verdict(t["FM-1"] <= t["stock FM-1"], t["FM-1"] / t["stock FM-1"], "<= 1"),
        "drift-1 / stock FM-1 = " + _verdict(t["drift-1"] <= t["stock FM-1"], t["drift-1"] / t["stock FM-1"], "<= 1"),
    ]
    overhead = t[ks] / t["drift-1"] - 1
    out.append(
        f"KeyStone overhead ({ks} vs drift-1) = {100 * overhead:+.1f} % "
        f"({'met' if overhead <= 0.10 else 'MISSED'}; target <= +10 %)"
    )
    # Both variants encode the very same prefix; only the expert pass and the selection differ. Their
    # difference over drift-1's chunk is the work KeyStone adds, free of the prefix's round-to-round noise.
    added = rows[ks]["expert"] + rows[ks]["keystone"] - drift["expert"]
    out.append(
        f"KeyStone added work (expert K-batch + selection - one expert pass) = {added:.0f} ms = "
        f"{100 * added / t['drift-1']:+.1f} % of a drift-1 chunk "
        f"({'met' if added <= 0.10 * t['drift-1'] else 'MISSED'}; target <= +10 %)"
    )
    ratio = t["FM-10"] / t["drift-1"]
    # Prefix P is paid once by every variant; FM-10 adds 9 more expert passes E. Predicted ratio from
    # the drift-1 split: (P + other + 10 E) / (P + other + E).
    p, e = drift["prefix"] + drift["other"], drift["expert"]
    per_step = fm10["expert"] / 10
    out.append(
        f"FM-10 / drift-1 = {ratio:.2f}x; from the split: prefix+other {p:.0f} ms paid once, one expert pass "
        f"{e:.1f} ms (FM-10: {per_step:.1f} ms per step), so (P + 10E) / (P + E) = {(p + 10 * e) / (p + e):.2f}x; "
        f"prefix is {100 * drift['prefix'] / drift['total']:.0f} % of a drift chunk"
    )
    shared = next((n for n in rows if n.startswith("drift+KS") and n.endswith("stock pass")), None)
    if shared:
        out.append(
            f"shared-prefix expert pass: {ks} {t[ks]:.0f} ms vs {t[shared]:.0f} ms through SmolVLA's "
            f"stock pass (expert {rows[ks]['expert']:.0f} vs {rows[shared]['expert']:.0f} ms)"
        )
    tol = 1e-4 if meta["dtype"] == "float32" else 5e-2
    for name, d in meta.get("shared_vs_stock_pass", {}).items():
        out.append(
            f"outputs, shared vs stock pass, {name}: max |diff| {d:.2e} "
            f"({'met' if d <= tol else 'MISSED'}; tolerance {tol:g} in normalised action units)"
        )
    if meta["device"].startswith("cuda"):
        out.append("GPU: drift-1 chunk = " + _verdict(t["drift-1"] <= 20.0, t["drift-1"], "<= 20 ms on an H100"))
        out.append("GPU: FM-10 / drift-1 = " + _verdict(ratio >= 4.6, ratio, ">= 4.6x"))
    return out


def write_plot(result: dict, path: Path) -> Path:
    """latency.png (1200x460): one stacked horizontal bar per variant, prefix / expert / KeyStone / other
    (median ms, segments in the legend's colours), the chunk's median total written at the bar end."""
    from lekiwi_drift.charts import figure, hbars, save

    rows, meta = result["rows"], result["meta"]
    names = [f"{'ours' if r['who'] == 'ours' else 'LeRobot'} {n.removeprefix('stock ')}" for n, r in rows.items()]
    title = (
        f"Per-chunk latency, median of {meta['rounds']} rounds: {meta['device_name']}, {meta['dtype']}, "
        f"{meta['cameras']} cameras {meta['image'][0]}x{meta['image'][1]}, chunk {meta['chunk']}, batch 1"
        f"{' (TINY model)' if meta['tiny'] else ''}"
    )
    fig = figure(1200, 460, title)
    ax = fig.subplots()
    hbars(
        ax,
        names,
        [[r[p] for p in PARTS] for r in rows.values()],
        seg_names=["prefix encode", "expert passes", "KeyStone", "other"],
        value_labels=True,
    )
    ax.set_xlabel("milliseconds per chunk")
    return save(fig, path)


def save(result: dict, out: Path) -> list[Path]:
    import json

    out.mkdir(parents=True, exist_ok=True)
    data = {"meta": result["meta"], "rows": result["rows"], "checks": checks(result), "samples": result["samples"]}
    (out / "latency.json").write_text(json.dumps(data, indent=2))
    return [out / "latency.json", write_plot(result, out / "latency.png")]
