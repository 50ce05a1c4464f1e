"""`lekiwi-drift bench NAME`: benchmarks. Each lives in lekiwi_drift/bench/<name>.py with
`HELP`, `add_arguments(parser)` and `run(args) -> int`; add its name to BENCHES when it works."""

from __future__ import annotations

import importlib

BENCHES = ("link",)


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="run a benchmark and print its table")
    benches = p.add_subparsers(dest="bench", metavar="BENCH", required=True)
    for name in BENCHES:
        mod = importlib.import_module(f"lekiwi_drift.bench.{name.replace('-', '_')}")
        bp = benches.add_parser(name, help=mod.HELP)
        mod.add_arguments(bp)
        bp.set_defaults(run=mod.run)
