"""Session reports: the scoreboard as text and Markdown, every attempt as CSV, and a bar chart (PNG) of
success rates with their Wilson 95 % intervals. Used by `lekiwi-drift trials report` and the TUI's
final screen; the plotting library is imported only when the chart is drawn (chart.py)."""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from lekiwi_drift.trials.session import Tally, TrialSession


@dataclass
class ReportFiles:
    folder: Path
    trials_csv: Path
    summary_csv: Path
    markdown: Path
    chart: Path

    def all(self) -> list[Path]:
        return [self.trials_csv, self.summary_csv, self.markdown, self.chart]


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _reasons(t: Tally) -> str:
    return ", ".join(f"{r} {n}" for r, n in t.reasons.most_common()) or "-"


def score_rows(session: TrialSession) -> list[list[str]]:
    """One row per policy: label, k/n, rate, Wilson interval, aborted attempts, failure reasons."""
    rows = []
    for t in session.tallies():
        ci = t.interval
        rows.append(
            [
                t.label,
                f"{t.successes}/{t.n}",
                _pct(t.rate),
                f"[{ci.low:.3f}, {ci.high:.3f}]" if t.n else "-",
                str(t.aborted),
                _reasons(t),
            ]
        )
    return rows


HEADER = ["policy", "success", "rate", "95% CI (Wilson)", "aborted", "failure reasons"]


def header_line(session: TrialSession) -> str:
    p = session.protocol
    when = dt.datetime.fromtimestamp(session.created_at).strftime("%Y-%m-%d %H:%M")
    state = "finished" if session.finished else "in progress"
    return (
        f"session {session.session_id} ({when}, {state}): protocol {p.name}, item {p.item}, "
        f"{session.done}/{session.total} trials, order {p.order}, seed {session.seed}"
        + (", blind" if p.blind else "")
        + (f", latency {p.latency} charged in sim time" if p.latency else "")
    )


def text_report(session: TrialSession) -> str:
    rows = [HEADER] + score_rows(session)
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = [header_line(session), ""]
    for i, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    comps = session.comparisons()
    if comps:
        lines += ["", "pairwise Fisher exact test (two-sided):"]
        lines += [f"  {c.a} vs {c.b}: p = {c.p:.4g}" for c in comps]
    if not session.reveal:
        lines += ["", "blind session: policy names are revealed when every trial is scored"]
    return "\n".join(lines)


def markdown_report(session: TrialSession, folder: Path | None = None) -> str:
    lines = [
        f"# Trials: {session.protocol.name}",
        "",
        header_line(session),
        "",
        f'Task: "{session.protocol.task}"',
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in score_rows(session)]
    comps = session.comparisons()
    if comps:
        lines += ["", "Pairwise Fisher exact test (two-sided):", ""]
        lines += [f"- {c.a} vs {c.b}: p = {c.p:.4g}" for c in comps]
    lines += _trial_lines(session, folder)
    return "\n".join(lines) + "\n"


def _trial_lines(session: TrialSession, folder: Path | None) -> list[str]:
    """Every counted trial in order, with its reset seed and, where one was saved, its rollout video
    (linked relative to the report folder)."""
    import os

    rows = [r for r in session.rows if r.live]
    if not rows:
        return []
    lines = [
        "",
        "Trials (reset seed = the scene's jitter seed in the sim):",
        "",
        "| # | policy | reset seed | outcome | reason | video |",
        "|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: r.slot):
        video = (r.telemetry or {}).get("video")
        link = ""
        if video:
            rel = os.path.relpath(video, folder) if folder is not None else video
            link = f"[mp4]({rel})"
        policy = r.policy if session.reveal else f"policy {session.codes[r.policy]}"
        lines.append(f"| {r.slot + 1} | {policy} | {r.scene_seed} | {r.outcome} | {r.reason or ''} | {link} |")
    return lines


TRIAL_FIELDS = [
    "id",
    "slot",
    "block",
    "policy",
    "code",
    "checkpoint_hash",
    "checkpoint",
    "protocol",
    "order_seed",
    "scene_seed",
    "started_at",
    "ended_at",
    "outcome",
    "reason",
    "counted",
    "voided_at",
    "scored_by",
    "loop_outcome",
    "auto_success",
    "notes",
    "error",
    "telemetry",
]


def write_trials_csv(session: TrialSession, path: Path) -> None:
    """Every attempt, voided and aborted ones included (flagged), so the tally can be audited. Blind
    sessions keep the policy column hidden until they are finished."""
    import json

    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(TRIAL_FIELDS)
        for r in session.rows:
            values = {**r.__dict__, "telemetry": json.dumps(r.telemetry, sort_keys=True)}
            if not session.reveal:
                values["policy"] = values["checkpoint"] = values["checkpoint_hash"] = ""
            w.writerow([values[k] if values[k] is not None else "" for k in TRIAL_FIELDS])


def write_summary_csv(session: TrialSession, path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["policy", "successes", "n", "rate", "wilson_low", "wilson_high", "aborted", "failure_reasons"])
        for t in session.tallies():
            ci = t.interval
            w.writerow(
                [
                    t.label,
                    t.successes,
                    t.n,
                    "" if t.rate is None else f"{t.rate:.4f}",
                    f"{ci.low:.4f}",
                    f"{ci.high:.4f}",
                    t.aborted,
                    _reasons(t),
                ]
            )


def write_chart(session: TrialSession, path: Path) -> None:
    from lekiwi_drift.trials.chart import Bar, draw

    bars = [Bar(t.label, t.successes, t.n, t.interval.low, t.interval.high) for t in session.tallies()]
    draw(bars, f"{session.protocol.name}: {session.done}/{session.total} trials", path)


def export(session: TrialSession, folder: Path | None = None) -> ReportFiles:
    folder = Path(folder) if folder else session.store.path.with_name(f"{session.session_id}-report")
    folder.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(
        folder, folder / "trials.csv", folder / "summary.csv", folder / "report.md", folder / "success.png"
    )
    write_trials_csv(session, files.trials_csv)
    write_summary_csv(session, files.summary_csv)
    files.markdown.write_text(markdown_report(session, folder))
    write_chart(session, files.chart)
    return files
