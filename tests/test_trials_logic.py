"""Trials without the TUI: protocol parsing, schedules, blind codes, statistics, the session store,
undo/abort, the lock, resume lookup and the report files."""

from __future__ import annotations

import csv
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from lekiwi_drift.trials.protocol import ProtocolError, load_protocol, parse_protocol
from lekiwi_drift.trials.report import export, text_report
from lekiwi_drift.trials.schedule import blind_codes, build_schedule
from lekiwi_drift.trials.session import TrialSession, Verdict, auto_verdict
from lekiwi_drift.trials.stats import compare, fisher_exact, wilson
from lekiwi_drift.trials.store import SessionBusy

REPO = Path(__file__).resolve().parents[1]


def protocol(**kw):
    data = {"task": "pick up the salt bottle", "item": "salt_bottle", "trials_per_policy": 2, "seed": 5} | kw
    return parse_protocol(data, "test.yaml", default_name="salt_test")


# ---------------------------------------------------------------- statistics against published values


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (9, 10, 0.596, 0.982),  # Wilson 95 %: the paper's drift+KeyStone tally
        (7, 10, 0.397, 0.892),
        (3, 10, 0.108, 0.603),
        (0, 10, 0.000, 0.278),
        (10, 10, 0.722, 1.000),
    ],
)
def test_wilson_interval_matches_published_values(k, n, low, high):
    ci = wilson(k, n)
    assert ci.low == pytest.approx(low, abs=6e-4) and ci.high == pytest.approx(high, abs=6e-4)


@pytest.mark.parametrize(
    ("a", "b", "p"),
    [
        ((9, 10), (3, 10), 0.0198),  # R: fisher.test(matrix(c(9,1,3,7), 2)) -> 0.01978
        ((7, 10), (3, 10), 0.179),  # -> 0.1789
        ((9, 10), (7, 10), 0.582),  # -> 0.5820
        ((5, 10), (5, 10), 1.0),
    ],
)
def test_fisher_exact_matches_published_values(a, b, p):
    assert compare(*a, *b) == pytest.approx(p, abs=6e-4)
    assert compare(*b, *a) == pytest.approx(p, abs=6e-4)  # symmetric


def test_fisher_exact_classic_tea_tasting():
    # Fisher's lady tasting tea, 3/4 right: two-sided p = 0.4857 (17/35).
    assert fisher_exact(3, 1, 1, 3) == pytest.approx(17 / 35, rel=1e-9)


# ---------------------------------------------------------------- protocols


def test_shipped_protocols_parse():
    for item in ("salt_bottle", "matcha_tin", "chocolate_bar"):
        p = load_protocol(REPO / "trials" / f"{item}.yaml")
        assert p.item == item and p.policies == ("drift", "fm10", "fm1")
        assert p.trials_per_policy == 10 and p.order == "interleaved" and p.total_trials == 30


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"order": "random"}, "order"),
        ({"item": "pepper"}, "item"),
        ({"trials_per_policy": 0}, "trials_per_policy"),
        ({"trials_per_policy": "ten"}, "trials_per_policy"),
        ({"policies": []}, "policies"),
        ({"policies": ["drift", "drift"]}, "policies"),
        ({"time_limit_s": -1}, "time_limit_s"),
        ({"blind": "yes"}, "blind"),
        ({"failure_reasons": ["dropped"]}, "failure_reasons"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_protocol_fields_are_named(change, field):
    with pytest.raises(ProtocolError, match=field):
        protocol(**change)


def test_missing_task_is_named():
    with pytest.raises(ProtocolError, match="task"):
        parse_protocol({"item": "salt_bottle"}, "x.yaml")


# ---------------------------------------------------------------- schedules and blind codes


def test_interleaved_blocks_run_every_policy_once_in_seeded_order():
    policies = ("drift", "fm10", "fm1")
    slots = build_schedule(policies, 10, "interleaved", seed=7)
    assert len(slots) == 30 and [s.index for s in slots] == list(range(30))
    orders = set()
    for block in range(10):
        in_block = [s.policy for s in slots if s.block == block]
        assert sorted(in_block) == sorted(policies)
        orders.add(tuple(in_block))
    assert len(orders) > 1  # shuffled per block, not one fixed rotation
    assert build_schedule(policies, 10, "interleaved", seed=7) == slots  # seeded: reproducible
    assert build_schedule(policies, 10, "interleaved", seed=8) != slots


def test_blocked_runs_each_policy_back_to_back():
    slots = build_schedule(("a", "b", "c"), 3, "blocked", seed=1)
    runs = [slots[i].policy for i in range(0, 9, 3)]
    assert sorted(runs) == ["a", "b", "c"]
    assert all(slots[i].policy == slots[i - i % 3].policy for i in range(9))


def test_blind_codes_are_a_seeded_shuffle():
    codes = {seed: blind_codes(("drift", "fm10", "fm1"), seed) for seed in range(20)}
    assert all(sorted(c.values()) == ["A", "B", "C"] for c in codes.values())
    assert len({tuple(sorted(c.items())) for c in codes.values()}) > 1
    assert blind_codes(("drift", "fm10", "fm1"), 3) == codes[3]


# ---------------------------------------------------------------- session store


def test_scores_are_durable_and_undo_keeps_the_row(tmp_path):
    s = TrialSession.create(protocol(), tmp_path)
    first = s.next_slot()
    s.record(first, Verdict("success"), checkpoint_hash="abc")
    second = s.next_slot()
    s.record(second, Verdict("failure", "dropped"), notes="slipped")
    # Another connection (another process, after a crash) sees both rows already.
    with sqlite3.connect(s.store.path) as other:
        assert other.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 2
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    undone = s.undo_last()
    assert undone.slot == second.index and s.next_slot() == second
    s.record(second, Verdict("aborted"))  # aborted: recorded, not counted, slot runs again
    assert s.next_slot() == second and s.done == 1
    s.record(second, Verdict("timeout", "timeout"))
    rows = s.rows
    assert [(r.outcome, r.live) for r in rows] == [
        ("success", True),
        ("failure", False),
        ("aborted", False),
        ("timeout", True),
    ]
    assert rows[1].voided_at is not None and rows[1].notes == "slipped"
    t = {x.policy: x for x in s.tallies()}
    assert sum(x.n for x in t.values()) == 2 and t[second.policy].aborted == 1
    s.close()


def test_failure_reason_must_come_from_the_protocol(tmp_path):
    s = TrialSession.create(protocol(), tmp_path)
    with pytest.raises(ValueError, match="reason"):
        s.record(s.next_slot(), Verdict("failure", "gremlins"))
    s.close()


def test_second_opener_is_refused_and_resume_finds_the_session(tmp_path):
    s = TrialSession.create(protocol(), tmp_path)
    s.record(s.next_slot(), Verdict("success"))
    with pytest.raises(SessionBusy, match="already open"):
        TrialSession.open(s.store.path)
    assert TrialSession.find_unfinished("salt_test", tmp_path) == s.store.path
    assert TrialSession.find_unfinished("other", tmp_path) is None
    s.close()
    again = TrialSession.open(TrialSession.resolve(s.session_id, tmp_path))
    assert again.done == 1 and again.slots == s.slots and again.seed == 5
    again.close()


def test_auto_verdicts():
    class R:
        def __init__(self, outcome, auto=None, error=None):
            self.outcome, self.auto_success, self.error = outcome, auto, error

    assert auto_verdict(R("success", True), sim=True, unattended=False) == Verdict("success")
    assert auto_verdict(R("timeout", False), sim=True, unattended=False) == Verdict("timeout", "timeout")
    assert auto_verdict(R("estop"), sim=False, unattended=False) is None
    v = auto_verdict(R("error", error="boom"), sim=True, unattended=True)
    assert (v.outcome, v.reason) == ("failure", "other") and "boom" in v.note
    # How the episode ended comes first: the sim's detector reading true at that moment (the item happened
    # to be in the basket when the e-stop was hit, or when the policy crashed) is no success.
    assert auto_verdict(R("estop", True), sim=True, unattended=False) is None
    assert auto_verdict(R("stale", True), sim=True, unattended=False) is None
    v = auto_verdict(R("error", True, error="boom"), sim=True, unattended=True)
    assert (v.outcome, v.reason) == ("failure", "other")
    assert auto_verdict(R("timeout", True), sim=True, unattended=False) == Verdict("success")  # on the last tick


def test_report_files(tmp_path):
    s = TrialSession.create(protocol(trials_per_policy=10, policies=["drift", "fm10", "fm1"]), tmp_path)
    wins = {"drift": 9, "fm10": 7, "fm1": 3}
    seen = Counter()
    while (slot := s.next_slot()) is not None:
        seen[slot.policy] += 1
        ok = seen[slot.policy] <= wins[slot.policy]
        s.record(slot, Verdict("success") if ok else Verdict("failure", "missed grasp"))
    text = text_report(s)
    assert "9/10" in text and "[0.596, 0.982]" in text and "drift vs fm1: p = 0.01977" in text
    files = export(s, tmp_path / "report")
    assert all(p.is_file() and p.stat().st_size > 0 for p in files.all())
    rows = list(csv.DictReader(files.trials_csv.open()))
    assert len(rows) == 30 and {r["policy"] for r in rows} == set(wins)
    summary = {r["policy"]: r for r in csv.DictReader(files.summary_csv.open())}
    assert summary["fm10"]["successes"] == "7" and summary["fm10"]["wilson_low"] == "0.3968"
    assert "| fm1 | 3/10 |" in files.markdown.read_text()
    assert files.chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    s.close()
