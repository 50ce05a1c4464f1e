"""The `lekiwi-drift trials` command line: `trials report` is a subcommand with its own options, and
`trials PROTOCOL [options]` / `trials --resume SESSION` parse as before."""

from __future__ import annotations

import csv

import pytest
from PIL import Image

from lekiwi_drift.cli.main import build_parser, main
from lekiwi_drift.trials.session import TrialSession, Verdict
from tests.test_trials_logic import protocol


@pytest.fixture
def scored_session(tmp_path):
    """A finished session in tmp_path/sessions: drift 2/2, fm1 0/2 (one missed grasp, one dropped)."""
    sessions = tmp_path / "sessions"
    s = TrialSession.create(protocol(policies=["drift", "fm1"]), sessions)
    failures = iter(("missed grasp", "dropped"))
    while (slot := s.next_slot()) is not None:
        s.record(slot, Verdict("success") if slot.policy == "drift" else Verdict("failure", next(failures)))
    session_id = s.session_id
    s.close()
    return sessions, session_id


def test_report_subcommand_takes_options_after_the_word(scored_session, capsys):
    sessions, session_id = scored_session
    assert main(["trials", "report", "--sessions-dir", str(sessions), session_id]) == 0
    out = capsys.readouterr().out
    assert f"session {session_id}" in out and "drift vs fm1: p = " in out
    assert "2/2" in out and "0/2" in out
    folder = sessions / f"{session_id}-report"
    summary = {r["policy"]: r for r in csv.DictReader((folder / "summary.csv").open())}
    assert (summary["drift"]["successes"], summary["fm1"]["successes"]) == ("2", "0")
    assert len(list(csv.DictReader((folder / "trials.csv").open()))) == 4
    assert "| fm1 | 0/2 |" in (folder / "report.md").read_text()
    with Image.open(folder / "success.png") as img:
        assert img.format == "PNG" and img.size == (192 + 156 * 2, 432)  # charts.py: fixed pixel size


def test_report_out_folder_and_path_form(scored_session, tmp_path, capsys):
    sessions, session_id = scored_session
    out = tmp_path / "elsewhere"
    assert main(["trials", "report", "--out", str(out), str(sessions / f"{session_id}.sqlite")]) == 0
    assert {p.name for p in out.iterdir()} == {"trials.csv", "summary.csv", "report.md", "success.png"}
    assert not (sessions / f"{session_id}-report").exists()
    assert f"wrote {out / 'trials.csv'}" in capsys.readouterr().out


def test_report_unknown_session_is_a_clear_error(scored_session, capsys):
    sessions, _ = scored_session
    assert main(["trials", "report", "--sessions-dir", str(sessions), "nope"]) == 2
    err = capsys.readouterr().err
    assert f"no session 'nope' (looked in {sessions};" in err


def test_report_without_session_and_report_only_options_are_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["trials", "report"])
    assert exc.value.code == 2 and "required: SESSION" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a run option is not a report option
        main(["trials", "report", "--sim", "S"])
    assert "unrecognized arguments: --sim" in capsys.readouterr().err


def test_protocol_form_parses_as_before():
    from lekiwi_drift.cli.trials import run_report, run_tui

    args = build_parser().parse_args(
        [
            "trials",
            "salt_bottle_sim",
            "--sim",
            "--auto",
            "--headless",
            "--new",
            "--video",
            "--latency",
            "measured",
            "--sessions-dir",
            "D",
        ]
    )
    assert (args.target, args.sim, args.auto, args.headless, args.new, args.video) == (
        "salt_bottle_sim",
        True,
        True,
        True,
        True,
        True,
    )
    assert (args.latency, args.sessions_dir, args.action) == ("measured", "D", run_tui)
    args = build_parser().parse_args(["trials", "--sessions-dir", "D", "--resume", "S"])
    assert (args.target, args.resume, args.sessions_dir, args.action) == (None, "S", "D", run_tui)
    args = build_parser().parse_args(["trials", "report", "S", "--out", "O"])
    assert (args.session, args.out, args.sessions_dir, args.action) == ("S", "O", None, run_report)
    with pytest.raises(SystemExit):  # `--out` belongs to `trials report` only
        build_parser().parse_args(["trials", "salt_bottle", "--out", "O"])
