"""Entry point. Commands register here; each imports its heavy dependencies only when it runs."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from lekiwi_drift import __version__
from lekiwi_drift.config.robot import ConfigError

# Command modules under lekiwi_drift.cli; each defines add_parser(subparsers) and run(args) -> int.
COMMANDS = ("host", "keys", "watch", "bench", "train", "sim", "teleop", "calibrate", "trials", "run", "parity")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lekiwi-drift", description=__doc__)
    parser.add_argument("--version", action="version", version=f"lekiwi-drift {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"lekiwi_drift.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args.run(args) or 0)
    except ConfigError as exc:
        print(f"lekiwi-drift: config error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
