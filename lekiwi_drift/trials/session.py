"""A trial session: the protocol, its fixed schedule, and the durable record of every attempt.

Plain logic with no UI: the TUI, `--auto` and the report all go through this class. The next trial is
always the first slot in the schedule without a live (scored, not undone) row, so after a crash or an
undo the session simply continues from the store, and nothing the UI held in memory matters.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lekiwi_drift.shipped import from_checkout
from lekiwi_drift.trials.protocol import SHIPPED_TRIALS, Protocol, protocol_from_dict
from lekiwi_drift.trials.schedule import Slot, blind_codes, draw_seed, schedule_for
from lekiwi_drift.trials.stats import Interval, compare, wilson
from lekiwi_drift.trials.store import SessionLock, SessionStore, StoreError, TrialRow


def default_sessions_dir() -> Path:
    """./trials/sessions when run from a project root (or from anywhere with a wheel install: sessions
    are the user's data and never go into the installed package); the checkout's trials/sessions when an
    editable install runs elsewhere."""
    local = Path.cwd() / "trials"
    if local.is_dir() or not from_checkout():
        return local / "sessions"
    return SHIPPED_TRIALS / "sessions"


@dataclass
class Tally:
    policy: str
    label: str  # what the operator sees: the preset name, or its blind code until the end
    successes: int = 0
    n: int = 0
    aborted: int = 0
    reasons: Counter = field(default_factory=Counter)

    @property
    def rate(self) -> float | None:
        return self.successes / self.n if self.n else None

    @property
    def interval(self) -> Interval:
        return wilson(self.successes, self.n)


@dataclass(frozen=True)
class Comparison:
    a: str  # labels
    b: str
    p: float


@dataclass(frozen=True)
class Verdict:
    outcome: str  # success, failure, timeout, aborted
    reason: str | None = None
    note: str = ""


def auto_verdict(result: Any, sim: bool, unattended: bool) -> Verdict | None:
    """Score an episode from how the control loop ended, or None when a person must decide.

    How the episode ended is looked at first: an e-stop, an error, stale observations or a stop need a
    person's judgement (collision? infrastructure fault?), whatever the sim's detector said at that
    moment; unattended runs count them as failures, reason 'other', so a fault never flatters a policy.
    Otherwise the sim's success detector decides success and the time limit decides timeout."""
    outcome = getattr(result, "outcome", "error")
    if outcome == "success" or (outcome == "timeout" and sim and getattr(result, "auto_success", None)):
        return Verdict("success")
    if outcome == "timeout":
        return Verdict("timeout", "timeout")
    if unattended:
        detail = getattr(result, "error", None) or ""
        return Verdict("failure", "other", f"control loop ended: {outcome}" + (f" ({detail})" if detail else ""))
    return None


class TrialSession:
    def __init__(self, store: SessionStore, lock: SessionLock | None = None):
        self.store = store
        self._lock = lock
        meta = store.meta()
        self.session_id: str = meta["session_id"]
        self.protocol: Protocol = protocol_from_dict(meta["protocol"], f"{store.path}:protocol")
        self.seed: int = int(meta["seed"])
        self.created_at: float = float(meta["created_at"])
        self.slots = [Slot(i, b, p) for i, b, p in store.slots()]
        self.codes = blind_codes(self.protocol.policies, self.seed)
        self._rows = store.trials()

    # -- opening ---------------------------------------------------------------------------------
    @classmethod
    def create(
        cls, protocol: Protocol, sessions_dir: Path, seed: int | None = None, extra_meta: dict[str, Any] | None = None
    ) -> TrialSession:
        seed = protocol.seed if seed is None else seed
        seed = draw_seed() if seed is None else int(seed)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        sessions_dir = Path(sessions_dir)
        sessions_dir.mkdir(parents=True, exist_ok=True)
        for n in itertools.count():
            session_id = f"{protocol.name}-{stamp}" + (f"-{n}" if n else "")
            path = sessions_dir / f"{session_id}.sqlite"
            if not path.exists():
                break
        slots = [(s.index, s.block, s.policy) for s in schedule_for(protocol, seed)]
        meta = {
            "session_id": session_id,
            "protocol": protocol.to_dict(),
            "protocol_source": protocol.source,
            "seed": seed,
            "created_at": time.time(),
            "finished_at": None,
            **(extra_meta or {}),
        }
        lock = SessionLock(path)
        lock.acquire()
        try:
            return cls(SessionStore.create(path, meta, slots), lock)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def open(cls, path: Path) -> TrialSession:
        lock = SessionLock(Path(path))
        lock.acquire()  # before reading: nobody else may be writing while we decide what comes next
        try:
            return cls(SessionStore.open(Path(path)), lock)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def read(cls, path: Path) -> TrialSession:
        """Read-only view without the lock (reports may look at a session another process is running)."""
        return cls(SessionStore.open(Path(path)))

    @staticmethod
    def resolve(name_or_path: str | Path, sessions_dir: Path) -> Path:
        path = Path(name_or_path)
        for candidate in (path, Path(sessions_dir) / path, Path(sessions_dir) / f"{path}.sqlite"):
            if candidate.is_file():
                return candidate
        raise StoreError(f"no session {str(name_or_path)!r} (looked in {sessions_dir}; give its id or .sqlite path)")

    @staticmethod
    def find_unfinished(protocol_name: str, sessions_dir: Path) -> Path | None:
        """The newest session of this protocol that has trials left, or None."""
        found: list[tuple[float, Path]] = []
        for path in Path(sessions_dir).glob("*.sqlite"):
            try:
                store = SessionStore.open(path)
            except StoreError:
                continue
            try:
                meta = store.meta()
                if meta["protocol"].get("name") == protocol_name and store.slots_left() > 0:
                    found.append((float(meta["created_at"]), path))
            finally:
                store.close()
        return max(found)[1] if found else None

    def close(self) -> None:
        self.store.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # -- where we are ----------------------------------------------------------------------------
    @property
    def rows(self) -> list[TrialRow]:
        return list(self._rows)

    def live_rows(self) -> list[TrialRow]:
        return [r for r in self._rows if r.live]

    def next_slot(self) -> Slot | None:
        done = {r.slot for r in self._rows if r.live}
        return next((s for s in self.slots if s.index not in done), None)

    @property
    def done(self) -> int:
        return len({r.slot for r in self._rows if r.live})

    @property
    def total(self) -> int:
        return len(self.slots)

    @property
    def finished(self) -> bool:
        return self.next_slot() is None

    @property
    def reveal(self) -> bool:
        """Policy names may be shown: not blind, or every trial scored."""
        return not self.protocol.blind or self.finished

    def label(self, policy: str) -> str:
        return policy if self.reveal else f"policy {self.codes[policy]}"

    def scene_seed(self, slot: Slot) -> int:
        """The seed of this trial's sim reset: with `jitter` (the default) the reset-noise seed on the fixed
        scene, the same for every policy within a block (paired trials); with `vary_scene` the layout seed
        scene_seed + trial; else the fixed scene's own seed (no noise)."""
        p = self.protocol
        if p.vary_scene:
            return p.scene_seed + slot.index
        return p.jitter_seed + slot.block if p.jitter else p.scene_seed

    # -- scoring ---------------------------------------------------------------------------------
    def record(
        self,
        slot: Slot,
        verdict: Verdict,
        *,
        result: Any = None,
        started_at: float | None = None,
        ended_at: float | None = None,
        scored_by: str = "operator",
        notes: str = "",
        checkpoint: str | None = None,
        checkpoint_hash: str | None = None,
    ) -> TrialRow:
        """Write one attempt and return it; committed (durable) when this returns."""
        if verdict.outcome in ("failure",) and verdict.reason not in self.protocol.failure_reasons:
            raise ValueError(f"failure reason {verdict.reason!r} is not one of {self.protocol.failure_reasons}")
        note = "; ".join(n for n in (verdict.note, notes) if n)
        row_id = self.store.add_trial(
            slot=slot.index,
            block=slot.block,
            policy=slot.policy,
            code=self.codes[slot.policy] if self.protocol.blind else None,
            checkpoint=checkpoint,
            checkpoint_hash=checkpoint_hash,
            protocol=self.protocol.name,
            order_seed=self.seed,
            scene_seed=self.scene_seed(slot),
            started_at=started_at,
            ended_at=ended_at,
            outcome=verdict.outcome,
            reason=verdict.reason if verdict.outcome != "success" else None,
            notes=note,
            loop_outcome=getattr(result, "outcome", None),
            auto_success=getattr(result, "auto_success", None),
            scored_by=scored_by,
            telemetry=_telemetry(result),
            error=getattr(result, "error", None),
        )
        self._after_write()
        return next(r for r in self._rows if r.id == row_id)

    def last_live(self) -> TrialRow | None:
        live = self.live_rows()
        return max(live, key=lambda r: r.id) if live else None

    def undo_last(self) -> TrialRow | None:
        """Void the newest live score (the row stays, marked void); its slot becomes the next trial."""
        row = self.last_live()
        if row is not None:
            self.store.void(row.id)
            self._after_write()
        return row

    def set_notes(self, trial_id: int, notes: str) -> None:
        self.store.set_notes(trial_id, notes)
        self._after_write()

    def _after_write(self) -> None:
        self._rows = self.store.trials()
        self.store.set_meta("finished_at", time.time() if self.finished else None)

    # -- tallies ---------------------------------------------------------------------------------
    def tallies(self) -> list[Tally]:
        out = {p: Tally(p, self.label(p)) for p in self.protocol.policies}
        for r in self._rows:
            if r.voided_at is not None:
                continue
            t = out[r.policy]
            if not r.counted:
                t.aborted += 1
                continue
            t.n += 1
            t.successes += r.success
            if not r.success:
                t.reasons[r.reason or "other"] += 1
        return list(out.values())

    def comparisons(self) -> list[Comparison]:
        tallies = [t for t in self.tallies() if t.n]
        return [
            Comparison(a.label, b.label, compare(a.successes, a.n, b.successes, b.n))
            for a, b in itertools.combinations(tallies, 2)
        ]


def _telemetry(result: Any) -> dict:
    if result is None:
        return {}
    out = {"duration_s": getattr(result, "duration_s", None)}
    for name in ("telemetry", "summary"):
        value = getattr(result, name, None)
        if isinstance(value, dict):
            out.update(value)
    return out


@dataclass
class ReplayedResult:
    """A scored run seen again after an undo: what the store kept of its EpisodeResult."""

    outcome: str | None
    auto_success: bool | None
    error: str | None
    telemetry: dict
    duration_s: float | None = None


def replayed_result(row: TrialRow) -> ReplayedResult:
    return ReplayedResult(
        row.loop_outcome, row.auto_success, row.error, dict(row.telemetry), row.telemetry.get("duration_s")
    )
