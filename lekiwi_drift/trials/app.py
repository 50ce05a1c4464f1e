"""`TrialsApp`: the Textual app that walks an operator through a trial session.

It owns the flow between screens and the few actions that must work everywhere (e-stop, undo, quit);
the rules live in `TrialSession` (session.py) and the robot side behind `TrialBackend` (backend.py).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from textual.app import App
from textual.binding import Binding
from textual.widgets import Input

from lekiwi_drift.trials.backend import TrialBackend
from lekiwi_drift.trials.schedule import Slot
from lekiwi_drift.trials.screens import PrepareScreen, ResetScreen, RunScreen, ScoreboardScreen, ScoreScreen
from lekiwi_drift.trials.session import TrialSession, Verdict, auto_verdict, replayed_result


class TrialsApp(App[int]):
    CSS_PATH = "trials.tcss"
    TITLE = "lekiwi-drift trials"
    # Space is the e-stop on every screen, so it is a priority binding: no widget can swallow it.
    BINDINGS = [Binding("space", "estop", "E-STOP", priority=True)]

    def __init__(
        self,
        session: TrialSession,
        backend: TrialBackend,
        auto: bool = False,
        first_paint_exit: bool = False,
        exit_when_done: bool = False,
        export_report: bool = True,
        on_progress: Callable[[str], None] | None = None,
        on_trial: Callable[[Any], None] | None = None,
    ):
        """`on_progress`: also gets the robot side's start-up messages (loading policies takes a while);
        `on_trial`: called with each trial row once it is committed. `--headless` shows both on stderr."""
        super().__init__()
        self.on_progress, self.on_trial = on_progress, on_trial
        self.session = session
        self.backend = backend
        self.auto = auto
        self.first_paint_exit = first_paint_exit
        self.exit_when_done = exit_when_done
        self.export_report = export_report
        self.current_runner: Any = None  # the loop of the running trial, for the e-stop
        self.first_paint_at: float | None = None  # time.monotonic() of the first screen
        self.torch_before_first_paint: bool | None = None
        self.error: str | None = None
        self.report_files: list[str] = []
        self.sub_title = session.session_id

    # -- startup ---------------------------------------------------------------------------------
    def on_mount(self) -> None:
        self.push_screen(PrepareScreen())

    def first_painted(self) -> None:
        if self.first_paint_at is None:
            self.first_paint_at = time.monotonic()
            self.torch_before_first_paint = "torch" in sys.modules
            if self.first_paint_exit:
                self.exit(0)

    def backend_ready(self) -> None:
        if self.auto and not self.backend.sim:
            # Unattended trials need a robot that resets its own scene and judges success: the sim.
            self.backend_failed(
                "--auto needs a simulated robot (--sim, or a `host --robot sim`); on the real "
                "robot a person resets and scores every trial"
            )
            return
        self.next_trial()

    def backend_failed(self, message: str) -> None:
        self.error = message
        screen = self.screen
        if isinstance(screen, PrepareScreen):
            screen.set_status(f"{message}\n(the session is saved; fix this and run the command again)", error=True)
        if self.auto and self.exit_when_done:
            self.exit(1)

    def previews_supported(self) -> bool:
        """Half-block previews need colour; skip them on a terminal without it."""
        return self.console.color_system in ("256", "truecolor")

    # -- the flow --------------------------------------------------------------------------------
    def next_trial(self, message: str = "") -> None:
        slot = self.session.next_slot()
        if slot is not None:
            self.switch_screen(ResetScreen(slot, message))
            return
        if self.export_report and not self.report_files:
            from lekiwi_drift.trials.report import export

            self.report_files = [str(p) for p in export(self.session).all()]
        self.switch_screen(ScoreboardScreen(final=True, files=self.report_files))
        if self.exit_when_done:
            self.exit(0)

    def episode_done(
        self, slot: Slot, result: Any, started_at: float | None, ended_at: float, choice: str | None
    ) -> None:
        """The control loop returned. Record what is already decided, else ask a person."""
        times = {"started_at": started_at, "ended_at": ended_at}
        if choice == "success":
            self._record(slot, Verdict("success"), result, "operator", **times)
        elif choice == "abort":
            self._record(slot, Verdict("aborted"), result, "operator", **times)
        elif choice == "failure":
            self.switch_screen(
                ScoreScreen(slot, result, "ended by the operator: pick the failure reason", replay=times)
            )
        else:
            if result.outcome == "estop":
                self.auto = False  # someone pressed the e-stop: a person is here and scores this one
            verdict = auto_verdict(result, self.backend.sim, unattended=self.auto)
            if verdict is not None:
                self._record(slot, verdict, result, "auto", **times)
            else:
                error = getattr(result, "error", None)
                why = f"the control loop ended: {result.outcome}" + (f" ({error})" if error else "")
                self.switch_screen(ScoreScreen(slot, result, why, replay=times))

    def score(self, slot: Slot, verdict: Verdict, result: Any, notes: str, replay: Any) -> None:
        """From the score screen (`replay`: the times of the run being scored)."""
        self._record(slot, verdict, result, "operator", notes=notes, **(replay or {}))

    def _record(
        self,
        slot: Slot,
        verdict: Verdict,
        result: Any,
        scored_by: str,
        notes: str = "",
        started_at: float | None = None,
        ended_at: float | None = None,
    ) -> None:
        checkpoint, digest = self.backend.checkpoint(slot.policy)
        row = self.session.record(
            slot,
            verdict,
            result=result,
            started_at=started_at,
            ended_at=ended_at,
            scored_by=scored_by,
            notes=notes,
            checkpoint=checkpoint,
            checkpoint_hash=digest,
        )
        # The row is committed; only now does the next screen show.
        if self.on_trial is not None:
            self.on_trial(row)
        what = row.outcome + (f" ({row.reason})" if row.reason and row.outcome != "timeout" else "")
        counted = "" if row.counted else ", not counted: this trial runs again"
        how = "auto-scored" if scored_by == "auto" else "scored"
        self.next_trial(f"trial {slot.index + 1} {how}: {what}{counted}   (u: undo)")

    # -- app-wide actions ------------------------------------------------------------------------
    def action_estop(self) -> None:
        runner = self.current_runner
        self.backend.estop()  # the one stop path: the running loop's e-stop, or one hold between trials
        focused = self.focused
        if isinstance(focused, Input) and runner is None:
            focused.insert_text_at_cursor(" ")  # typing notes: the key is also an ordinary space
        else:
            self.notify("E-STOP: base stopped, arm holding", severity="error", timeout=4)

    def action_undo(self) -> None:
        if not isinstance(self.screen, ResetScreen):
            return
        row = self.session.undo_last()
        if row is None:
            self.notify("nothing to undo")
            return
        slot = next(s for s in self.session.slots if s.index == row.slot)
        self.switch_screen(
            ScoreScreen(
                slot,
                replayed_result(row),
                f"undid: {row.outcome}" + (f" ({row.reason})" if row.reason else "") + "; score this trial again",
                notes=row.notes,
                replay={"started_at": row.started_at, "ended_at": row.ended_at},
            )
        )

    def action_scoreboard(self) -> None:
        self.push_screen(ScoreboardScreen())

    async def action_quit(self) -> None:
        if isinstance(self.screen, RunScreen):
            self.screen.stop.set()  # let the loop thread finish so the app can exit
        if self.current_runner is not None:
            self.backend.estop()
        self.exit(0 if self.error is None else 1)
