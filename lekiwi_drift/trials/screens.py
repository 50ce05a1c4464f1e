"""The screens of one trial, in the order an operator meets them:

PrepareScreen (first paint; connect and load policies in a worker) -> ResetScreen (reset the scene, sim
reset request, start key) -> RunScreen (countdown, the control loop in a worker thread, live panel,
end keys) -> ScoreScreen (when a person must score) -> the next ResetScreen ... -> ScoreboardScreen.

Screens only show things and forward keys; every decision and every write goes through the app's
methods, which go through `TrialSession` (durable before the next screen shows).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Input, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState

from lekiwi_drift.trials.backend import LoopFailure
from lekiwi_drift.trials.schedule import Slot
from lekiwi_drift.trials.session import Verdict
from lekiwi_drift.trials.widgets import LivePanel, Previews, Scoreboard, TrialHeader


class PrepareScreen(Screen):
    """First screen: the protocol and session, while the robot link and the policies come up."""

    BINDINGS = [Binding("q", "app.quit", "quit")]

    def compose(self) -> ComposeResult:
        with Vertical(id="prepare"):
            yield Static(id="protocol-info")
            yield Static("starting", id="status")
            yield Scoreboard(id="scoreboard")
        yield Footer()

    def on_mount(self) -> None:
        app, s = self.app, self.app.session
        p = s.protocol
        resumed = f"resumed at trial {s.done + 1}" if s.done else "new session"
        self.query_one("#protocol-info", Static).update(
            Text.assemble(
                (f"{p.name}", "bold"),
                f': "{p.task}"\n',
                f"session {s.session_id} ({resumed}), {s.total} trials: {p.trials_per_policy} per policy x "
                f"{len(p.policies)} policies, order {p.order}, seed {s.seed}, limit {p.time_limit_s:g} s"
                + (", blind" if p.blind else ""),
            )
        )
        self.query_one(Scoreboard).show(s)
        self.call_after_refresh(app.first_painted)
        if app.first_paint_exit:
            return
        if s.finished:
            self.set_status("this session is finished")
            app.call_after_refresh(app.next_trial)
            return
        self.start_backend()

    def set_status(self, text: str, error: bool = False) -> None:
        self.query_one("#status", Static).update(Text(text, style="bold red" if error else "yellow"))

    @work(thread=True, exclusive=True, exit_on_error=False)
    def start_backend(self) -> None:
        app = self.app

        def progress(msg: str) -> None:
            app.call_from_thread(self.set_status, msg)
            if app.on_progress is not None:
                app.on_progress(msg)

        try:
            app.backend.start(progress)
        except Exception as exc:  # shown on screen; the session on disk is untouched
            app.call_from_thread(app.backend_failed, f"{type(exc).__name__}: {exc}")
            return
        app.call_from_thread(app.backend_ready)


class ResetScreen(Screen):
    """Between trials: reset the scene (the sim resets by request), then the start key."""

    BINDINGS = [
        Binding("enter", "start", "start trial"),
        Binding("u", "app.undo", "undo last score"),
        Binding("n", "notes", "notes on last trial"),
        Binding("b", "app.scoreboard", "scoreboard"),
        Binding("q", "app.quit", "quit"),
    ]

    def __init__(self, slot: Slot, message: str = ""):
        super().__init__()
        self.slot = slot
        self.message = message
        self.scene_ready = False

    def compose(self) -> ComposeResult:
        with Vertical(id="reset"):
            yield TrialHeader(id="trial-header")
            yield Static(id="reset-prompt")
            yield Static(self.message, id="last-score")
            yield Scoreboard(id="scoreboard")
        yield Footer()

    def on_mount(self) -> None:
        s = self.app.session
        self.query_one(TrialHeader).show(s, self.slot)
        self.query_one(Scoreboard).show(s)
        self.prompt("resetting the scene ...")
        self.reset_scene()

    def prompt(self, text: str) -> None:
        self.query_one("#reset-prompt", Static).update(Text(text, style="yellow"))

    @work(thread=True, exclusive=True, exit_on_error=False)
    def reset_scene(self) -> None:
        app = self.app
        try:
            msg = app.backend.reset_scene(app.session.protocol.item, app.session.scene_seed(self.slot))
        except Exception as exc:
            app.call_from_thread(self.prompt, f"scene reset failed: {exc}; reset by hand, then press Enter")
        else:
            app.call_from_thread(self.prompt, f"{msg}. Press Enter to start.")
        app.call_from_thread(self._scene_ready)

    def _scene_ready(self) -> None:
        self.scene_ready = True
        if self.app.auto:
            self.action_start()

    def on_screen_resume(self) -> None:
        if self.app.auto and self.scene_ready:  # back from a look at the scoreboard: carry on
            self.action_start()

    def action_start(self) -> None:
        # Only from the top of the stack: switch_screen replaces the top, which may be a pushed scoreboard.
        if self.scene_ready and self.app.screen is self:
            self.app.switch_screen(RunScreen(self.slot))

    def action_notes(self) -> None:
        row = self.app.session.last_live()
        if row is not None:
            self.app.push_screen(NotesScreen(row.id, row.notes))


class RunScreen(Screen):
    """The running trial: countdown, then the control loop in a worker thread. The loop reports
    TickStatus from its own thread; we only keep the newest and redraw from a timer, so a slow
    terminal can never hold up the 30 Hz loop."""

    BINDINGS = [
        Binding("s", "end('success')", "success"),
        Binding("f", "end('failure')", "failure"),
        Binding("a", "end('abort')", "abort (not counted)"),
        Binding("p", "previews", "previews"),
    ]

    def __init__(self, slot: Slot):
        super().__init__()
        self.slot = slot
        self.stop = threading.Event()
        self.choice: str | None = None
        self.status: Any = None
        self.phase = "countdown"
        self.started_at: float | None = None
        self.show_previews = True

    def compose(self) -> ComposeResult:
        with Vertical(id="run"):
            yield TrialHeader(id="trial-header")
            yield LivePanel(id="live")
            yield Previews(id="previews")
        yield Footer()

    def on_mount(self) -> None:
        app = self.app
        self.query_one(TrialHeader).show(app.session, self.slot)
        self.show_previews = app.previews_supported()
        self.countdown_end = time.monotonic() + app.session.protocol.reset_countdown_s
        self.set_interval(0.2, self.refresh_status)
        self.refresh_status()

    def refresh_status(self) -> None:
        if self.phase == "countdown":
            left = self.countdown_end - time.monotonic()
            if left <= 0 and self.choice is None:
                self.phase = "running"
                self.run_episode()
            self.query_one(LivePanel).show(
                None, self.app.session.protocol.time_limit_s, f"starting in {max(0.0, left):.1f} s"
            )
            return
        status = self.status
        self.query_one(LivePanel).show(status, self.app.session.protocol.time_limit_s, self.phase)
        if self.show_previews and status is not None:
            self.query_one(Previews).show(getattr(status, "images", None))

    def on_status(self, status: Any) -> None:  # control-loop thread
        self.status = status

    def run_episode(self) -> None:
        runner = self.app.backend.runner(self.slot.policy)
        self.app.current_runner = runner
        limit = self.app.session.protocol.time_limit_s
        self.started_at = time.time()

        def episode() -> Any:
            try:
                return runner.run_episode(max_time_s=limit, stop=self.stop, on_status=self.on_status)
            except Exception as exc:  # a crashed loop is a trial outcome, not a crashed TUI
                return LoopFailure(f"{type(exc).__name__}: {exc}")

        self.run_worker(episode, name="episode", thread=True, exit_on_error=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.name != "episode" or event.state not in (WorkerState.SUCCESS, WorkerState.ERROR):
            return
        self.app.current_runner = None
        result = event.worker.result if event.state == WorkerState.SUCCESS else LoopFailure(str(event.worker.error))
        self.phase = "ended"
        self.app.episode_done(self.slot, result, self.started_at, time.time(), self.choice)

    def action_end(self, choice: str) -> None:
        if self.choice is not None or self.phase == "ended":
            return
        self.choice = choice
        if self.phase == "countdown":  # never started: nothing to score, back to the reset screen
            self.phase = "ended"
            self.app.next_trial("start cancelled")
            return
        self.phase = "stopping"
        self.stop.set()

    def action_previews(self) -> None:
        self.show_previews = not self.show_previews
        self.query_one(Previews).display = self.show_previews


class ScoreScreen(Screen):
    """A person scores the trial: success, failure with a reason, or abort (not counted, re-run)."""

    BINDINGS = [
        Binding("s", "pick('success')", "success"),
        Binding("a", "pick('abort')", "abort"),
        *[Binding(str(i), f"reason({i})", show=False) for i in range(1, 10)],
    ]

    def __init__(self, slot: Slot, result: Any, why: str = "", notes: str = "", replay: Any = None):
        super().__init__()
        self.slot, self.result, self.why, self.notes, self.replay = slot, result, why, notes, replay

    def compose(self) -> ComposeResult:
        reasons = self.app.session.protocol.failure_reasons
        with Vertical(id="score"):
            yield TrialHeader(id="trial-header")
            yield OptionList(
                Option("s  success", id="success"),
                *[
                    Option(f"{i}  {'' if r == 'timeout' else 'failure: '}{r}", id=f"reason-{i}")
                    for i, r in enumerate(reasons, 1)
                ],
                Option("a  abort: not counted, run this trial again", id="abort"),
                id="choices",
            )
            yield Input(self.notes, placeholder="notes on this trial (Tab here, Enter to go back)", id="notes")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(TrialHeader).show(self.app.session, self.slot, self.why)
        self.query_one(OptionList).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one(OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        oid = event.option.id or ""
        if oid.startswith("reason-"):
            self.action_reason(int(oid.removeprefix("reason-")))
        else:
            self.action_pick(oid)

    def _verdict(self, verdict: Verdict) -> None:
        notes = self.query_one("#notes", Input).value.strip()
        self.app.score(self.slot, verdict, self.result, notes, self.replay)

    def action_pick(self, choice: str) -> None:
        self._verdict(Verdict("success") if choice == "success" else Verdict("aborted"))

    def action_reason(self, i: int) -> None:
        reasons = self.app.session.protocol.failure_reasons
        if 1 <= i <= len(reasons):
            reason = reasons[i - 1]
            self._verdict(Verdict("timeout" if reason == "timeout" else "failure", reason))


class NotesScreen(ModalScreen):
    """Edit the notes of a scored trial (saved on Enter)."""

    BINDINGS = [Binding("escape", "app.pop_screen", "cancel")]

    def __init__(self, trial_id: int, notes: str):
        super().__init__()
        self.trial_id, self.notes = trial_id, notes

    def compose(self) -> ComposeResult:
        with Vertical(id="notes-box"):
            yield Static(f"notes on trial #{self.trial_id} (Enter saves, Esc cancels)")
            yield Input(self.notes, id="notes-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.app.session.set_notes(self.trial_id, event.value.strip())
        self.app.pop_screen()
        self.app.notify("notes saved")


class ScoreboardScreen(Screen):
    """The tallies. Mid-session it is a look (b/Esc goes back); at the end it names the report files."""

    BINDINGS = [Binding("escape,b", "back", "back"), Binding("q", "app.quit", "quit")]

    def __init__(self, final: bool = False, files: list[str] | None = None):
        super().__init__()
        self.final, self.files = final, files or []

    def compose(self) -> ComposeResult:
        with Vertical(id="board"):
            yield Scoreboard(id="scoreboard")
            yield Static(id="files")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(Scoreboard).show(self.app.session)
        if self.final:
            text = "session finished"
            if self.files:
                folder = Path(self.files[0]).parent
                text += f"; report in {folder}/: " + ", ".join(Path(f).name for f in self.files)
            self.query_one("#files", Static).update(Text(text, style="green"))

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        return not (action == "back" and self.final)  # the final board has nothing to go back to

    def action_back(self) -> None:
        if not self.final:
            self.app.pop_screen()
