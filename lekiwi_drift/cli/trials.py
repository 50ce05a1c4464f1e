"""`lekiwi-drift trials`: repeated pick-and-place trials with honest tallies per policy (Textual TUI).

    lekiwi-drift trials salt_bottle [--sim] [--auto]   run (or resume) a session of trials/salt_bottle.yaml
    lekiwi-drift trials --resume SESSION               continue that session
    lekiwi-drift trials report [--sessions-dir DIR] [--out DIR] SESSION
                                                       print the scoreboard; write CSV, Markdown, PNG
                                                       (`lekiwi-drift trials report --help`)

An unfinished session of the same protocol is resumed automatically (`--new` starts another one).
Textual, torch and the robot link are imported only when they are needed, so the first screen is quick.
"""

from __future__ import annotations

import argparse
import logging
import sys
from contextlib import contextmanager
from pathlib import Path

REPORT_HELP = "print a session's scoreboard and Fisher tests; write trials.csv, summary.csv, report.md, success.png"
SESSIONS_DIR_HELP = "where session databases live (default: ./trials/sessions)"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "trials",
        help="repeated trials per policy in a TUI, durable tallies; `trials report SESSION`",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "target",
        nargs="?",
        metavar="PROTOCOL",
        help="a protocol name (trials/<name>.yaml) or path (`report` is the subcommand above; a "
        "protocol file called report.yaml is reached by its path)",
    )
    p.add_argument("--resume", metavar="SESSION", help="continue this session (id or .sqlite path)")
    p.add_argument("--new", action="store_true", help="start a new session even if one of this protocol is unfinished")
    p.add_argument(
        "--seed", type=int, help="order/blind-code seed for a new session (default: the protocol's, else random)"
    )
    p.add_argument("--config", help="robot config YAML (default: ./lekiwi.yaml, else the packaged example)")
    p.add_argument("--sim", action="store_true", help="start a simulated LeKiwi in this process")
    p.add_argument(
        "--sim-clock",
        choices=("realtime", "lockstep"),
        default="realtime",
        help="with --sim: realtime (like the robot) or lockstep (one tick per action, deterministic)",
    )
    p.add_argument(
        "--latency",
        metavar="PROFILE",
        help="new session, sim: charge inference latency in sim time (measured | paper-laptop | paper-gpu | "
        "<ms>); implies --sim-clock lockstep; recorded in the session's protocol",
    )
    p.add_argument("--trials-per-policy", type=int, metavar="N", help="new session: override the protocol's count")
    p.add_argument(
        "--video",
        action="store_true",
        help="save a rollout MP4 of every trial in SESSION-videos/<policy>/ next to the session database",
    )
    p.add_argument(
        "--auto",
        action="store_true",
        help="unattended: start every trial and score it from the sim's success detector / time limit",
    )
    p.add_argument("--headless", action="store_true", help="with --auto: no terminal UI; exit when the session is done")
    p.add_argument("--sessions-dir", help=SESSIONS_DIR_HELP)
    p.add_argument("--first-paint-exit", action="store_true", help=argparse.SUPPRESS)  # `bench tui`
    p.set_defaults(run=run, action=run_tui)

    report = argparse.ArgumentParser(prog=f"{p.prog} report", description=REPORT_HELP)
    report.add_argument(
        "session",
        metavar="SESSION",
        help="a session id (its database name without .sqlite) or the path of its .sqlite file",
    )
    report.add_argument("--sessions-dir", metavar="DIR", help=SESSIONS_DIR_HELP)
    report.add_argument("--out", metavar="DIR", help="output folder (default: SESSION-report/ next to the database)")
    report.set_defaults(run=run, action=run_report)

    # argparse cannot put an optional positional (PROTOCOL) and a subcommand in the same slot: with
    # subparsers every first word must be a subcommand, and with two optional positionals
    # (`report SESSION`) argparse binds both at the first word, so `report --sessions-dir D S` left S
    # unrecognised. So the first word picks the parser: `report` -> the report parser with its own
    # options, anything else -> the protocol parser above, unchanged.
    parse_protocol_args = p.parse_known_args

    def parse_known_args(args=None, namespace=None):
        if args and args[0] == "report":
            return report.parse_known_args(args[1:], namespace)
        return parse_protocol_args(args, namespace)

    p.parse_known_args = parse_known_args


def _sessions_dir(args) -> Path:
    from lekiwi_drift.trials.session import default_sessions_dir

    return Path(args.sessions_dir) if args.sessions_dir else default_sessions_dir()


def run(args) -> int:
    from lekiwi_drift.trials.store import SessionBusy, StoreError

    try:
        return args.action(args)
    except SessionBusy as exc:
        print(f"lekiwi-drift trials: {exc}", file=sys.stderr)
        return 3
    except StoreError as exc:
        print(f"lekiwi-drift trials: {exc}", file=sys.stderr)
        return 2


def run_report(args) -> int:
    from lekiwi_drift.trials.report import export, text_report
    from lekiwi_drift.trials.session import TrialSession

    session = TrialSession.read(TrialSession.resolve(args.session, _sessions_dir(args)))
    try:
        print(text_report(session))
        files = export(session, Path(args.out) if args.out else None)
    finally:
        session.close()
    print("\nwrote " + ", ".join(str(p) for p in files.all()))
    return 0


def open_session(args):
    """Resume (explicitly, or the newest unfinished session of the protocol) or create a session."""
    from lekiwi_drift.trials.protocol import load_protocol
    from lekiwi_drift.trials.session import TrialSession

    sessions = _sessions_dir(args)
    if args.resume:
        return TrialSession.open(TrialSession.resolve(args.resume, sessions))
    if not args.target:
        from lekiwi_drift.config.robot import ConfigError

        raise ConfigError("give a protocol (e.g. `lekiwi-drift trials salt_bottle`) or --resume SESSION")
    protocol = load_protocol(args.target)
    overrides = {}
    if args.latency is not None:
        overrides["latency"] = args.latency
    if args.trials_per_policy is not None:
        overrides["trials_per_policy"] = args.trials_per_policy
    if overrides:  # re-validated like a file, then stored with the session
        from lekiwi_drift.trials.protocol import protocol_from_dict

        protocol = protocol_from_dict({**protocol.to_dict(), **overrides}, f"{protocol.source} + command line")
    if not args.new and (found := TrialSession.find_unfinished(protocol.name, sessions)) is not None:
        session = TrialSession.open(found)
        if session.protocol.to_dict() != {**protocol.to_dict(), "seed": session.protocol.seed}:
            logging.getLogger(__name__).warning(
                "%s changed since session %s started; the session keeps the protocol it started with",
                protocol.source,
                session.session_id,
            )
        return session
    return TrialSession.create(protocol, sessions, seed=args.seed)


@contextmanager
def _log_to_file(path: Path | None):
    """While the TUI owns the terminal, log lines go to a file next to the session instead of stderr
    (a stray line on stderr would tear the screen)."""
    root = logging.getLogger()
    streams = [
        h for h in root.handlers if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]
    handler = None
    if path is not None:
        for h in streams:
            root.removeHandler(h)
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    try:
        yield
    finally:
        if handler is not None:
            root.removeHandler(handler)
            handler.close()
            for h in streams:
                root.addHandler(h)


class _HeadlessProgress:
    """`--headless`: nothing is on screen, so the start-up and every scored trial go to stderr (a session of
    60 sim trials runs for many minutes): on a terminal under a bar of trials done, in a log as lines."""

    def __init__(self, session):
        from lekiwi_drift.progress import bar

        self.session = session
        self.bar = None
        if sys.stderr.isatty():
            self.bar = bar(session.total, "trials", unit="trial")
            self.bar.update(session.done)

    def _line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def message(self, text: str) -> None:
        self._line(f"robot: {text}")

    def trial(self, row) -> None:
        s = self.session
        what = row.outcome + (f" ({row.reason})" if row.reason and row.outcome != "timeout" else "")
        self._line(f"[{s.done}/{s.total} done] trial {row.slot + 1} {s.label(row.policy)}: {what}")
        if self.bar is not None:
            self.bar.update(s.done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_tui(args) -> int:
    if args.headless and not args.auto:
        print("lekiwi-drift trials: --headless needs --auto (nobody could press a key)", file=sys.stderr)
        return 2
    session = open_session(args)
    try:
        if session.done:
            print(f"resuming session {session.session_id} at trial {session.done + 1}/{session.total}", file=sys.stderr)
        from lekiwi_drift.config.robot import load_config
        from lekiwi_drift.trials.app import TrialsApp
        from lekiwi_drift.trials.backend import RobotBackend

        clock = "lockstep" if session.protocol.latency is not None else args.sim_clock
        video_dir = session.store.path.with_name(f"{session.session_id}-videos") if args.video else None
        backend = RobotBackend(
            load_config(args.config),
            session.protocol,
            sim_host=args.sim,
            sim_clock=clock,
            scene_seed=session.protocol.scene_seed,
            video_dir=video_dir,
        )
        progress = _HeadlessProgress(session) if args.headless else None
        app = TrialsApp(
            session,
            backend,
            auto=args.auto,
            first_paint_exit=args.first_paint_exit,
            exit_when_done=args.headless,
            on_progress=progress.message if progress else None,
            on_trial=progress.trial if progress else None,
        )
        log_path = None if args.headless else session.store.path.with_suffix(".log")
        try:
            with _log_to_file(log_path):
                code = app.run(headless=args.headless)
        finally:
            backend.close()
            if progress is not None:
                progress.close()
        if args.first_paint_exit:
            print(f"first_paint_monotonic={app.first_paint_at} torch_imported={app.torch_before_first_paint}")
            return 0
        from lekiwi_drift.trials.report import text_report

        print(text_report(session))
        if app.report_files:
            print("\nwrote " + ", ".join(app.report_files))
        if app.error:
            print(f"lekiwi-drift trials: {app.error}", file=sys.stderr)
            return 1
        if not session.finished:
            print(
                f"\nsession {session.session_id} paused at trial {session.done + 1}/{session.total}; run the "
                f"same command again (or --resume {session.session_id}) to continue",
                file=sys.stderr,
            )
        return int(code or 0)
    finally:
        session.close()
