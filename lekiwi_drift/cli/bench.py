"""`lekiwi-drift bench NAME [options]`: benchmarks. Each lives in lekiwi_drift/bench/<name>.py with
`HELP`, `add_arguments(parser)` and `run(args) -> int`; add its name to BENCHES when it works.
A bench module is imported only when it runs, so one bench's heavy imports never slow the CLI."""

from __future__ import annotations

import argparse
import importlib

BENCHES = ("link", "sim", "keystone", "drift-loss", "tui", "record", "latency", "toy", "loop")


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help=f"run a benchmark and print its table ({', '.join(BENCHES)})")
    p.add_argument("bench", choices=BENCHES, metavar="BENCH", help=f"one of: {', '.join(BENCHES)}")
    p.add_argument("options", nargs=argparse.REMAINDER, help="the benchmark's own options (BENCH --help)")
    p.set_defaults(run=run)


def run(args) -> int:
    mod = importlib.import_module(f"lekiwi_drift.bench.{args.bench.replace('-', '_')}")
    parser = argparse.ArgumentParser(prog=f"lekiwi-drift bench {args.bench}", description=mod.HELP)
    mod.add_arguments(parser)
    return int(mod.run(parser.parse_args(args.options)) or 0)
