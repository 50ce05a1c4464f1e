"""`lekiwi-drift bench keystone`: the cost of KeyStone selection on its own (no policy).

K candidate chunks of T x D actions (default 8 of 50 x 9, flattened: 450 numbers each), drawn as a
two-mode mixture so both the guard and the k-means path are realistic. Three figures: one observation
(B = 1), sixteen observations in one call (B = 16), and the same sixteen as sixteen B = 1 calls (what
a caller that loops over its batch would pay). Each figure is the median over many timed calls after a
warm-up; the thread count is the machine's unless --threads says otherwise.
"""

from __future__ import annotations

import os
import sys

from lekiwi_drift.bench.timing import median_ms

HELP = "KeyStone selection time: B=1, B=16 in one call, and B=16 as a loop of B=1 calls"
TARGETS_MS = {"B=1": 0.37, "B=16, one call": 1.5}


def add_arguments(parser) -> None:
    parser.add_argument("--candidates", type=int, default=8, help="K candidates per observation (default: 8)")
    parser.add_argument("--horizon", type=int, default=50, help="chunk length T (default: 50)")
    parser.add_argument("--dims", type=int, default=9, help="real action dims D (default: 9)")
    parser.add_argument("--batch", type=int, default=16, help="observations in the batched call (default: 16)")
    parser.add_argument("--repeats", type=int, default=1000, help="timed calls per figure (default: 1000)")
    parser.add_argument("--warmup", type=int, default=100, help="untimed calls first (default: 100)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    parser.add_argument("--seed", type=int, default=0)


def _candidates(torch, batch: int, k: int, size: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    modes = torch.randn(batch, 2, size, generator=gen)
    which = torch.randint(0, 2, (batch, k), generator=gen)
    picked = modes.gather(1, which[..., None].expand(batch, k, size))
    return picked + 0.3 * torch.randn(batch, k, size, generator=gen)


def run(args) -> int:
    import torch

    from lekiwi_drift.policy.keystone import keystone_select

    torch.set_num_threads(args.threads)
    size = args.horizon * args.dims
    one = _candidates(torch, 1, args.candidates, size, args.seed)
    many = _candidates(torch, args.batch, args.candidates, size, args.seed + 1)
    rows = [row[None] for row in many]

    def loop():
        for row in rows:
            keystone_select(row)

    cases = [
        ("B=1", lambda: keystone_select(one), args.repeats),
        (f"B={args.batch}, one call", lambda: keystone_select(many), args.repeats),
        # The loop costs `batch` calls per repeat: fewer repeats keep the run short.
        (f"B={args.batch}, loop of B=1 calls", loop, max(1, args.repeats // 4)),
    ]
    print(
        f"KeyStone: K={args.candidates} candidates of {args.horizon}x{args.dims}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {args.repeats} repeats after {args.warmup} warm-up",
        file=sys.stderr,
    )
    results = []
    for name, fn, repeats in cases:
        print(f"  measuring {name} ...", file=sys.stderr, flush=True)
        results.append((name, median_ms(fn, repeats, args.warmup)))

    guard = keystone_select(many)[1]["guard_fired"].float().mean().item()
    print(f"\n| case | median ms | per observation ms | target ms |\n|---|---|---|---|")
    for name, ms in results:
        per_obs = ms / (1 if name == "B=1" else args.batch)
        target = TARGETS_MS.get(name.replace(str(args.batch), "16"), None)
        print(f"| {name} | {ms:.3f} | {per_obs:.3f} | {'' if target is None else f'≤ {target}'} |")
    print(f"\nguard fired on {100 * guard:.0f} % of the batched observations (the rest ran k-means)")
    return 0
