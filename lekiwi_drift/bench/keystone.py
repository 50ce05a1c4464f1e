"""`lekiwi-drift bench keystone`: the cost of KeyStone selection on its own (no policy).

K candidate chunks of T x D actions (default 8 of 50 x 9, flattened: 450 numbers each), drawn as a
two-mode mixture with noise: the guard never fires on these draws, so every observation runs the
k-means (the NumPy path's and the loop's slower case; the torch path always computes both). For one
observation (B = 1, the robot's case) and for sixteen (B = 16), each is timed as
- `keystone_select`, one call (on a CPU float tensor that is the NumPy path);
- the torch batched path alone (`impl="torch"`, what a GPU caller runs);
- `keystone_select` called once per observation (B = 16 only: what a caller looping over its batch pays);
- the loop baseline: the algorithm written plainly, one observation at a time, in NumPy (explicit
  F-dimensional centroids, early exits; per observation the cheapest plain loop here: the same loop in
  torch paid 1.3-1.5x as much in development runs, for torch's per-op cost).
All of them run interleaved: every round runs each once, in a freshly shuffled order, so load on the
machine hits each alike. (A fixed order hands each the same predecessor, and in development runs what
ran right after the torch path paid up to 2x; with more than one torch thread the torch path's OpenMP
workers also keep spinning after each call, taking CPU from whatever runs next on a loaded machine:
OMP_WAIT_POLICY=passive stops that.) Each figure is the median over the rounds; the ratios compare
medians of the same run. Every implementation must pick the same candidates on the bench's inputs, or
the bench stops.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time

import numpy as np

HELP = "KeyStone selection time at B=1 and B=16: batched, torch path and a per-observation loop, interleaved"
TARGETS_MS = {1: 0.37, 16: 1.5}  # keystone_select, one call, at the default sizes


def add_arguments(parser) -> None:
    parser.add_argument("--candidates", type=int, default=8, help="K candidates per observation (default: 8)")
    parser.add_argument("--clusters", type=int, default=4, help="C k-means clusters (default: 4)")
    parser.add_argument("--horizon", type=int, default=50, help="chunk length T (default: 50)")
    parser.add_argument("--dims", type=int, default=9, help="real action dims D (default: 9)")
    parser.add_argument("--batch", type=int, default=16, help="observations in the batched case (default: 16)")
    parser.add_argument("--repeats", type=int, default=500, help="timed rounds (default: 500)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed rounds first (default: 20)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    parser.add_argument("--seed", type=int, default=0)


def loop_numpy(x: np.ndarray, clusters: int = 4, tau: float = 0.3) -> list[int]:
    """Baseline: KeyStone per observation of x [B,K,F], written plainly in NumPy."""
    chosen = []
    for obs in x:
        k = len(obs)
        d = np.linalg.norm(obs[:, None] - obs[None], axis=-1)
        medoid = int(d.sum(1).argmin())
        pairs = np.sort(d[np.triu_indices(k, 1)])
        spread = np.linalg.norm(obs.mean(0) - obs[medoid]) / (pairs[(len(pairs) - 1) // 2] + 1e-8)
        if spread < tau:
            chosen.append(medoid)
            continue
        n_clusters = min(clusters, k)
        centroids, previous = obs[:n_clusters].copy(), None
        for _ in range(10):
            labels = ((obs[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
            if previous is not None and (labels == previous).all():
                break
            for c in range(n_clusters):
                if (labels == c).any():
                    centroids[c] = obs[labels == c].mean(0)
            previous = labels
        labels = ((obs[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
        members = np.flatnonzero(labels == np.bincount(labels, minlength=n_clusters).argmax())
        chosen.append(int(members[d[np.ix_(members, members)].sum(1).argmin()]))
    return chosen


def _candidates(torch, batch: int, k: int, size: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    modes = torch.randn(batch, 2, size, generator=gen)
    which = torch.randint(0, 2, (batch, k), generator=gen)
    picked = modes.gather(1, which[..., None].expand(batch, k, size))
    return picked + 0.3 * torch.randn(batch, k, size, generator=gen)


COLUMNS = ("keystone_select", "torch batched path", "B=1 calls in a loop", "loop baseline")


def _implementations(x, clusters: int) -> dict:
    """COLUMNS name -> a call returning the chosen indices as a list, for candidates x [B,K,F]."""
    from lekiwi_drift.policy.keystone import keystone_select

    rows = [row[None] for row in x]
    impls = {
        "keystone_select": lambda: keystone_select(x, clusters)[0].tolist(),
        "torch batched path": lambda: keystone_select(x, clusters, impl="torch")[0].tolist(),
        "B=1 calls in a loop": lambda: [int(keystone_select(row, clusters)[0]) for row in rows],
        "loop baseline": lambda: loop_numpy(x.numpy(), clusters),  # from the tensor, as keystone_select
    }
    if len(x) == 1:
        del impls["B=1 calls in a loop"]  # the same as the one call
    return impls


def _interleaved_ms(jobs: dict, repeats: int, warmup: int, seed: int) -> dict:
    """Median ms of each job over `repeats` rounds; every round runs each job once, shuffled."""
    rng = random.Random(seed)
    times: dict = {key: [] for key in jobs}
    order = list(jobs)
    for round_ in range(warmup + repeats):
        rng.shuffle(order)
        for key in order:
            t0 = time.perf_counter()
            jobs[key]()
            if round_ >= warmup:
                times[key].append(time.perf_counter() - t0)
    return {key: 1000.0 * statistics.median(t) for key, t in times.items()}


def run(args) -> int:
    import torch

    from lekiwi_drift.policy.keystone import keystone_select

    torch.set_num_threads(args.threads)
    size = args.horizon * args.dims
    batches = {1: _candidates(torch, 1, args.candidates, size, args.seed)}
    batches[args.batch] = _candidates(torch, args.batch, args.candidates, size, args.seed + 1)
    jobs = {}
    for b, x in batches.items():
        impls = _implementations(x, args.clusters)
        picks = {name: fn() for name, fn in impls.items()}
        if len({tuple(p) for p in picks.values()}) != 1:
            print(f"implementations disagree at B={b}: {picks}", file=sys.stderr)
            return 1
        jobs.update({(b, name): fn for name, fn in impls.items()})
    print(
        f"KeyStone: K={args.candidates} candidates of {args.horizon}x{args.dims}, C={args.clusters}, "
        f"torch {torch.__version__}, numpy {np.__version__}, {torch.get_num_threads()} torch threads; "
        f"{len(jobs)} timings interleaved, {args.repeats} rounds after {args.warmup} warm-up; "
        f"load average {os.getloadavg()[0]:.1f}",
        file=sys.stderr,
    )
    ms = _interleaved_ms(jobs, args.repeats, args.warmup, args.seed)

    print(
        f"\n| case | {' | '.join(f'{n} ms' for n in COLUMNS)} | keystone_select / loop baseline "
        "| torch batched path / loop baseline | keystone_select per observation ms | target ms |"
    )
    print("|---" * (len(COLUMNS) + 5) + "|")
    for b in batches:
        cells = " | ".join(f"{ms[(b, n)]:.3f}" if (b, n) in ms else "—" for n in COLUMNS)
        base, ks, torch_ms = (ms[(b, n)] for n in ("loop baseline", "keystone_select", "torch batched path"))
        target = TARGETS_MS.get(b) if (args.candidates, size, args.clusters) == (8, 450, 4) else None
        print(
            f"| B={b} | {cells} | {ks / base:.2f} | {torch_ms / base:.2f} | {ks / b:.3f} "
            f"| {'' if target is None else f'≤ {target}'} |"
        )
    print()
    for b, x in batches.items():
        guard = keystone_select(x, args.clusters)[1]["guard_fired"].float().mean().item()
        print(f"B={b}: the guard fired on {100 * guard:.0f} % of the observations (the rest ran k-means)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}", file=sys.stderr)
    return 0
