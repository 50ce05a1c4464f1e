"""Small widgets for the trials TUI. They only display what they are given; the screens decide."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.containers import Horizontal
from textual.widgets import Static

from lekiwi_drift.trials.session import TrialSession


def _num(value: Any, fmt: str, unit: str = "") -> str:
    return "-" if value is None else f"{value:{fmt}}{unit}"


class TrialHeader(Static):
    """Trial k/N and the policy (or its blind code)."""

    def show(self, session: TrialSession, slot, note: str = "") -> None:
        text = Text()
        text.append(f"Trial {slot.index + 1}/{session.total}", style="bold")
        text.append(f"   {session.label(slot.policy)}", style="bold cyan")
        text.append(f"   block {slot.block + 1}   scene seed {session.scene_seed(slot)}", style="dim")
        if note:
            text.append(f"\n{note}")
        self.update(text)


class LivePanel(Static):
    """Elapsed time, chunk latency (observation to ready, and compute), control rate and the stall and
    late-action counters of the running trial."""

    def show(self, status: Any, time_limit_s: float, phase: str) -> None:
        t = Table.grid(padding=(0, 2))
        t.add_column(style="dim", justify="right")
        t.add_column()
        elapsed = getattr(status, "elapsed_s", None)
        t.add_row("state", Text(phase, style="bold yellow" if phase != "running" else "bold green"))
        t.add_row("elapsed", f"{_num(elapsed, '.1f', ' s')} / {time_limit_s:g} s")
        # What the robot waits for (observation taken -> chunk ready) and the part of it spent computing.
        t.add_row("obs → chunk ready", _num(getattr(status, "last_latency_ms", None), ".0f", " ms"))
        t.add_row("inference compute", _num(getattr(status, "last_infer_ms", None), ".0f", " ms"))
        t.add_row("control rate", _num(getattr(status, "hz", None), ".1f", " Hz"))
        t.add_row("stall ticks", _num(getattr(status, "stall_ticks", None), "d"))
        t.add_row("late actions", _num(getattr(status, "late_actions", None), "d"))
        t.add_row("obs age", _num(getattr(status, "obs_age_ms", None), ".0f", " ms"))
        t.add_row("queue", _num(getattr(status, "queue_len", None), "d"))
        auto = getattr(status, "auto_success", None)
        if auto is not None:
            t.add_row("sim detector", Text("success" if auto else "not yet", style="green" if auto else ""))
        self.update(t)


class CameraPreview(Static):
    """One camera as half-block pixels; blank until a frame arrives."""

    def __init__(self, camera: str, **kwargs):
        super().__init__(**kwargs)
        self.camera = camera
        self.border_title = camera

    def show(self, image) -> None:
        if image is None:
            return
        # Imported here: numpy costs a quarter second, and the first screen needs no camera.
        from lekiwi_drift.trials.preview import HalfBlockImage

        self.update(HalfBlockImage(image, cols=24, rows=9))


class Previews(Horizontal):
    """A row of camera previews, built lazily from the camera names of the first frames."""

    def show(self, images: dict | None) -> None:
        if not images:
            return
        have = {w.camera: w for w in self.query(CameraPreview)}
        for name, image in images.items():
            if name not in have:
                have[name] = CameraPreview(name, classes="preview")
                self.mount(have[name])
            have[name].show(image)


def _bar(rate: float | None, width: int = 10) -> Text:
    """The success rate as a bar of `width` cells (eighth-block resolution)."""
    if rate is None:
        return Text("")
    eighths = round(rate * width * 8)
    full, part = divmod(eighths, 8)
    bar = "█" * full + (" ▏▎▍▌▋▊▉"[part] if part else "")
    return Text(bar.ljust(width), style="green on grey23")


class Scoreboard(Static):
    """Per policy: successes/n, rate, Wilson 95 % interval, aborted attempts, failure reasons; then
    the pairwise Fisher exact p-values."""

    def show(self, session: TrialSession) -> None:
        t = Table(
            title=f"{session.protocol.name}: {session.done}/{session.total} trials scored",
            title_style="bold",
            expand=False,
        )
        for col, justify in (
            ("policy", "left"),
            ("success", "right"),
            ("rate", "right"),
            ("", "left"),
            ("95% CI (Wilson)", "center"),
            ("aborted", "right"),
            ("failure reasons", "left"),
        ):
            t.add_column(col, justify=justify, min_width=10 if not col else None)
        for tally in session.tallies():
            ci = tally.interval
            t.add_row(
                tally.label,
                f"{tally.successes}/{tally.n}",
                "-" if tally.rate is None else f"{100 * tally.rate:.0f}%",
                _bar(tally.rate),
                f"[{ci.low:.2f}, {ci.high:.2f}]" if tally.n else "-",
                str(tally.aborted),
                ", ".join(f"{r} {n}" for r, n in tally.reasons.most_common()) or "-",
            )
        body = Text()
        comps = session.comparisons()
        if comps:
            body.append("\nFisher exact, two-sided:  ", style="dim")
            body.append("   ".join(f"{c.a} vs {c.b} p={c.p:.3g}" for c in comps))
        if not session.reveal:
            body.append("\nblind: policy names are revealed when every trial is scored", style="italic dim")
        elif session.protocol.blind:
            body.append(
                "\nblind codes were: "
                + ", ".join(f"{c} = {p}" for p, c in sorted(session.codes.items(), key=lambda kv: kv[1])),
                style="italic",
            )
        self.update(Group(t, body))
