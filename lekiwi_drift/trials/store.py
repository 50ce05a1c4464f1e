"""One SQLite database per trial session (`trials/sessions/<session>.sqlite`), WAL journal.

Every attempt is a row and every write commits before returning, with `synchronous=FULL`, so a score
that the UI has acknowledged survives `kill -9` and a power cut. Rows are never deleted: an undo marks the
row void (with the time), an abort is a row that does not count. A lock file next to the database, held
with `flock` for the life of the process, keeps a second TUI off the same session; the kernel drops the
lock when the process dies, however it dies, so a killed session can always be resumed.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
COUNTED_OUTCOMES = ("success", "failure", "timeout")
OUTCOMES = COUNTED_OUTCOMES + ("aborted",)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS slots (idx INTEGER PRIMARY KEY, block INTEGER NOT NULL, policy TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    slot INTEGER NOT NULL REFERENCES slots(idx),
    block INTEGER NOT NULL,
    policy TEXT NOT NULL,          -- preset name as in the protocol
    code TEXT,                     -- blind code shown to the operator (NULL when not blind)
    checkpoint TEXT,
    checkpoint_hash TEXT,
    protocol TEXT NOT NULL,
    order_seed INTEGER NOT NULL,
    scene_seed INTEGER,
    started_at REAL,               -- unix time the control loop started
    ended_at REAL,
    outcome TEXT NOT NULL CHECK (outcome IN ('success', 'failure', 'timeout', 'aborted')),
    reason TEXT,                   -- failure reason (timeout: 'timeout'); NULL on success / abort
    notes TEXT NOT NULL DEFAULT '',
    loop_outcome TEXT,             -- how the control loop ended: success, timeout, stopped, estop, error, stale
    auto_success INTEGER,          -- the sim's success detector at the end (NULL on a real robot)
    scored_by TEXT NOT NULL,       -- 'operator' or 'auto'
    counted INTEGER NOT NULL,      -- 1: part of the tally; 0: aborted attempt
    scored_at REAL NOT NULL,
    voided_at REAL,                -- set by undo: the row stays, the tally drops it
    telemetry TEXT NOT NULL DEFAULT '{}',  -- the control loop's summary (JSON)
    error TEXT
);
"""


class SessionBusy(RuntimeError):
    """Another process holds this session open."""


class StoreError(RuntimeError):
    """The file is not a trial session database this version understands."""


@dataclass
class TrialRow:
    id: int
    slot: int
    block: int
    policy: str
    code: str | None
    checkpoint: str | None
    checkpoint_hash: str | None
    protocol: str
    order_seed: int
    scene_seed: int | None
    started_at: float | None
    ended_at: float | None
    outcome: str
    reason: str | None
    notes: str
    loop_outcome: str | None
    auto_success: bool | None
    scored_by: str
    counted: bool
    scored_at: float
    voided_at: float | None
    telemetry: dict
    error: str | None

    @property
    def live(self) -> bool:
        """Counts toward the tally: a scored (not aborted) trial that was not undone."""
        return self.counted and self.voided_at is None

    @property
    def success(self) -> bool:
        return self.outcome == "success"


_COLUMNS = [f for f in TrialRow.__dataclass_fields__]


class SessionLock:
    """An exclusive `flock` on `<db>.lock`, holding the owner's pid for the refusal message."""

    def __init__(self, db_path: Path):
        self.path = Path(db_path).with_suffix(".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise SessionBusy(
                f"session {self.path.stem} is already open in another `lekiwi-drift trials` "
                f"(pid {owner}); close that one first (two TUIs on one session could "
                "score the same trial twice)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


class SessionStore:
    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = Path(path)
        self._conn = conn

    # -- opening ---------------------------------------------------------------------------------
    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(str(path), isolation_level=None, timeout=5.0)  # autocommit; explicit BEGIN
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # a committed score survives a power cut, not just a kill
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    @classmethod
    def create(cls, path: Path, meta: dict[str, Any], slots: list[tuple[int, int, str]]) -> SessionStore:
        """Write the schema, meta and schedule to a temporary file and rename it into place, so a session
        file is never seen (or left behind by a crash) half made."""
        path = Path(path)
        if path.exists():
            raise StoreError(f"{path} already exists")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".new")
        tmp.unlink(missing_ok=True)
        conn = sqlite3.connect(str(tmp), isolation_level=None)  # rollback journal: one file to rename
        try:
            conn.executescript(_SCHEMA)
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [(k, json.dumps(v)) for k, v in {**meta, "schema": SCHEMA_VERSION}.items()],
            )
            conn.executemany("INSERT INTO slots VALUES (?, ?, ?)", slots)
            conn.execute("COMMIT")
        finally:
            conn.close()
        os.replace(tmp, path)
        return cls(path, cls._connect(path))

    @classmethod
    def open(cls, path: Path) -> SessionStore:
        path = Path(path)
        if not path.is_file():
            raise StoreError(f"no session database at {path}")
        conn = cls._connect(path)
        try:
            version = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"{path} is not a trial session database ({exc})") from None
        if version is None or json.loads(version[0]) != SCHEMA_VERSION:
            conn.close()
            raise StoreError(f"{path}: session schema {version and version[0]} is not {SCHEMA_VERSION}")
        return cls(path, conn)

    def close(self) -> None:
        self._conn.close()

    # -- meta and slots --------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        return {r["key"]: json.loads(r["value"]) for r in self._conn.execute("SELECT key, value FROM meta")}

    def set_meta(self, key: str, value: Any) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def slots(self) -> list[tuple[int, int, str]]:
        return [tuple(r) for r in self._conn.execute("SELECT idx, block, policy FROM slots ORDER BY idx")]

    def slots_left(self) -> int:
        """Slots without a live score (the truth; meta's finished_at is only a convenience)."""
        return self._conn.execute(
            "SELECT COUNT(*) FROM slots WHERE idx NOT IN (SELECT slot FROM trials "
            "WHERE counted = 1 AND voided_at IS NULL)"
        ).fetchone()[0]

    # -- trials ----------------------------------------------------------------------------------
    def add_trial(self, **values: Any) -> int:
        values = dict(values)
        values["telemetry"] = json.dumps(values.get("telemetry") or {}, default=_jsonable)
        if values.get("auto_success") is not None:
            values["auto_success"] = int(bool(values["auto_success"]))
        values["counted"] = int(values["outcome"] in COUNTED_OUTCOMES)
        values.setdefault("scored_at", time.time())
        names = [k for k in values if k in _COLUMNS and k != "id"]
        unknown = set(values) - set(names)
        if unknown:
            raise ValueError(f"unknown trial columns {sorted(unknown)}")
        cur = self._conn.execute(
            f"INSERT INTO trials ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
            [values[k] for k in names],
        )
        return int(cur.lastrowid)

    def void(self, trial_id: int) -> None:
        self._conn.execute(
            "UPDATE trials SET voided_at = ? WHERE id = ? AND voided_at IS NULL", (time.time(), trial_id)
        )

    def set_notes(self, trial_id: int, notes: str) -> None:
        self._conn.execute("UPDATE trials SET notes = ? WHERE id = ?", (notes, trial_id))

    def trials(self) -> list[TrialRow]:
        rows = self._conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM trials ORDER BY id")
        return [_row(r) for r in rows]


def _row(r: sqlite3.Row) -> TrialRow:
    d = dict(r)
    d["telemetry"] = json.loads(d["telemetry"] or "{}")
    d["counted"] = bool(d["counted"])
    d["auto_success"] = None if d["auto_success"] is None else bool(d["auto_success"])
    return TrialRow(**d)


def _jsonable(value: Any) -> Any:
    """Telemetry may hold numpy scalars; store them as plain numbers."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)
