"""`lekiwi-drift sim`: the simulated LeKiwi's own tools (the scripted expert, snapshots for people).

Serving the sim to clients is `lekiwi-drift host --robot sim`; these commands run it in-process.
"""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    from lekiwi_drift.sim.config import ITEMS

    p = sub.add_parser("sim", help="simulated LeKiwi: evaluate the scripted expert, write snapshots")
    cmds = p.add_subparsers(dest="sim_command", metavar="SIM_COMMAND", required=True)

    ev = cmds.add_parser("eval-expert", help="success table of the scripted expert over seeded scenes (no rendering)")
    ev.add_argument("--items", nargs="+", choices=ITEMS, default=list(ITEMS), help="items to evaluate (default: all)")
    ev.add_argument("--episodes", type=int, default=50, help="seeded scenes per item (default: 50)")
    ev.add_argument("--first-seed", type=int, default=0, help="seed of the first scene (default: 0)")
    ev.add_argument("--time-limit", type=float, default=30.0, help="sim seconds per episode (default: 30)")
    ev.add_argument(
        "--min-success", type=float, default=0.9, help="exit 1 when an item's success rate is below this (default: 0.9)"
    )
    ev.set_defaults(run=run_eval)

    sn = cmds.add_parser("snapshot", help="camera PNGs of a scene and a GIF of the expert solving it")
    sn.add_argument("--item", choices=ITEMS, default="salt_bottle")
    sn.add_argument("--seed", type=int, default=0)
    sn.add_argument("--out", default="sim_snapshot", help="output folder (default: ./sim_snapshot)")
    sn.add_argument("--width", type=int, default=640)
    sn.add_argument("--height", type=int, default=480)
    sn.set_defaults(run=run_snapshot)

    from lekiwi_drift.emulator.console import add_parser as add_buses_parser

    add_buses_parser(cmds)


def _gl_guard(fn):
    """Turn a missing-OpenGL error into its message and exit code 2 instead of a traceback."""

    def wrapped(args) -> int:
        from lekiwi_drift.sim.gl import SimGLError

        try:
            return fn(args)
        except SimGLError as exc:
            print(f"lekiwi-drift sim: {exc}", file=sys.stderr)
            return 2

    return wrapped


@_gl_guard
def run_eval(args) -> int:
    if args.episodes < 1:
        print("lekiwi-drift sim: --episodes must be at least 1", file=sys.stderr)
        return 2
    from lekiwi_drift.sim.evaluate import format_table, timed_evaluation

    results, wall = timed_evaluation(args.items, args.episodes, args.first_seed, args.time_limit)
    print(
        f"scripted expert, {args.episodes} seeded scenes per item (seeds {args.first_seed}.."
        f"{args.first_seed + args.episodes - 1}), {args.time_limit:g} s sim time limit"
    )
    print(format_table(results, wall))
    worst = min(sum(r.success for r in res) / len(res) for res in results.values())
    return 0 if worst >= args.min_success else 1


@_gl_guard
def run_snapshot(args) -> int:
    from lekiwi_drift.sim.snapshot import write_snapshot

    result = write_snapshot(args.item, args.seed, args.out, args.width, args.height)
    ep = result.episode
    verdict = f"solved in {ep.sim_time:.1f} s sim time" if ep.success else f"NOT solved (stopped in phase {ep.phase})"
    print(f"{args.item}, seed {args.seed}: expert {verdict}")
    for path in result.files:
        print(f"  wrote {path}")
    return 0
