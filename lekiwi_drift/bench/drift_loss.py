"""`lekiwi-drift bench drift-loss`: the training-side cost of the drift loss, per grouping.

Times one forward + backward of `drift_loss` on a training-sized batch (default B = 64 observations,
G = 8 live samples, T = 50 steps, D = 9 real action dims; a quarter of the rows have their last 10
steps padded, as at episode ends). The samples are a leaf tensor, so the figure is the loss alone:
no network.

Beside it, the flow-matching loss the baseline trains with, on the same batch shape: one noisy chunk
per observation x_t = t*eps + (1-t)*a, a D->D linear layer standing in for the expert's output head,
and F.mse_loss against the velocity target eps - a, forward + backward. It is the floor a loss can
cost at this size, i.e. what the drift objective adds on top of flow matching per training step.
"""

from __future__ import annotations

import os
import sys

from lekiwi_drift.bench.timing import median_ms

HELP = "drift loss forward+backward per grouping, beside a flow-matching MSE loss on the same batch"
TARGETS_MS = {"action_dim": 9.7, "chunk": 6.7, "timestep": 19.3}


def add_arguments(parser) -> None:
    parser.add_argument("--batch", type=int, default=64, help="observations B (default: 64)")
    parser.add_argument("--samples", type=int, default=8, help="live samples G per observation (default: 8)")
    parser.add_argument("--horizon", type=int, default=50, help="chunk length T (default: 50)")
    parser.add_argument("--dims", type=int, default=9, help="real action dims D (default: 9)")
    parser.add_argument("--repeats", type=int, default=60, help="timed steps per figure (default: 60)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (default: 5)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    parser.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    import torch
    import torch.nn.functional as F

    from lekiwi_drift.policy.drift import GROUPINGS, drift_loss

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    b, g, t, d = args.batch, args.samples, args.horizon, args.dims
    demo = torch.randn(b, t, d)
    gen = (demo[:, None] + 0.5 * torch.randn(b, g, t, d)).requires_grad_()
    is_pad = torch.zeros(b, t, dtype=torch.bool)
    is_pad[: b // 4, max(0, t - 10) :] = True

    def drift_step(grouping: str):
        def step():
            gen.grad = None
            loss, _ = drift_loss(gen, demo, is_pad, grouping)
            loss.backward()

        return step

    head = torch.nn.Linear(d, d)
    eps = torch.randn(b, t, d)
    time_in = torch.rand(b, 1, 1)

    def flow_step():
        head.zero_grad(set_to_none=True)
        x_t = time_in * eps + (1 - time_in) * demo
        loss = F.mse_loss(head(x_t), eps - demo)
        loss.backward()

    print(
        f"drift loss: B={b} G={g} T={t} D={d}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"median of {args.repeats} after {args.warmup} warm-up",
        file=sys.stderr,
    )
    rows = []
    for grouping in GROUPINGS:
        print(f"  measuring drift loss, {grouping} ...", file=sys.stderr, flush=True)
        rows.append(
            (f"drift, {grouping}", median_ms(drift_step(grouping), args.repeats, args.warmup), TARGETS_MS.get(grouping))
        )
    print("  measuring flow-matching MSE ...", file=sys.stderr, flush=True)
    rows.append(("flow matching MSE (1 sample, linear head)", median_ms(flow_step, args.repeats, args.warmup), None))

    print("\n| loss | fwd+bwd median ms | target ms |\n|---|---|---|")
    for name, ms, target in rows:
        print(f"| {name} | {ms:.2f} | {'' if target is None else f'≤ {target}'} |")
    return 0
