"""`lekiwi-drift bench toy`: the drift grouping study at laptop scale.

Trains one small conditional generator (lekiwi_drift.bench.toy_model) on synthetic LeKiwi-like chunks
(lekiwi_drift.bench.toy_data) with each objective, under the same budget (steps x observations x G
rows per step), the same per-dimension mean/std normalisation and the same seeds:

- drift with action-dimension, chunk-level and timestep grouping (`lekiwi_drift.policy.drift.drift_loss`),
  sampled with one step;
- flow matching, sampled with 10 Euler steps (FM-10) and with 1 (FM-1), from the same trained net;
- drift under bf16 autocast, with the fp32 guard (the library) and without it (a bf16 target,
  `toy_train.drift_loss_unguarded`), for the groupings given by --bf16-groupings.

Every trained model is scored on held-out contexts against exact draws from the true distribution
(lekiwi_drift.bench.toy_metrics); a "true sampler" row scores fresh true draws the same way, which is
the floor each metric can reach with this many samples. Results: mean +- std over seeds.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

HELP = "drift grouping study on synthetic LeKiwi-like chunks: groupings, FM-10/FM-1, fp32 guard"


def add_arguments(parser) -> None:
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per method (default: 3)")
    parser.add_argument("--steps", type=int, default=300, help="optimiser steps per run (default: 300)")
    parser.add_argument("--batch", type=int, default=64, help="observations per step (default: 64)")
    parser.add_argument("--samples", type=int, default=8, help="G, live samples per observation (default: 8)")
    parser.add_argument("--contexts", type=int, default=32, help="held-out contexts (default: 32)")
    parser.add_argument("--per-context", type=int, default=128, help="samples per held-out context (default: 128)")
    parser.add_argument(
        "--bf16-groupings",
        default="action_dim",
        help="groupings trained under bf16 autocast with and without the fp32 guard, comma-separated, "
        "or 'none' (default: action_dim)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default: 1; on a shared 2-core box more threads oversubscribe)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 seeds, 20 steps, small eval")
    parser.add_argument("--out", default=None, help="folder for results.json and the PNG plots")


def plan(args) -> list:
    """The list of RunSpecs the study trains, in the order it trains them."""
    from lekiwi_drift.bench.toy_train import RunSpec
    from lekiwi_drift.policy.drift import GROUPINGS

    bf16 = [] if args.bf16_groupings == "none" else [g.strip() for g in args.bf16_groupings.split(",") if g.strip()]
    unknown = set(bf16) - set(GROUPINGS)
    if unknown:
        raise SystemExit(f"--bf16-groupings: unknown grouping(s) {sorted(unknown)}; choose from {GROUPINGS}")
    common = {"steps": args.steps, "batch": args.batch, "samples": args.samples}
    specs = []
    for seed in range(args.seeds):
        specs += [RunSpec("drift", g, "fp32", seed, **common) for g in GROUPINGS]
        specs.append(RunSpec("flow", "action_dim", "fp32", seed, **common))
        for g in bf16:
            specs += [RunSpec("drift", g, p, seed, **common) for p in ("bf16-guard", "bf16-noguard")]
    return specs


def samplers_for(spec) -> list[tuple[str, int]]:
    """(row name, steps) for each way a trained run is sampled: flow -> FM-10 and FM-1, drift -> 1 step."""
    if spec.objective == "flow":
        return [("FM-10", 10), ("FM-1", 1)]
    return [(spec.name, 1)]


def heldout(contexts: int, per_context: int):
    """Fixed held-out contexts [E,3] and two independent true sample sets [E,N,T,9] (eval + floor)."""
    import torch

    from lekiwi_drift.bench.toy_data import CHANNELS, CHUNK, sample_chunks, sample_contexts

    gen = torch.Generator().manual_seed(999)
    ctx = sample_contexts(contexts, gen)
    rep = ctx.repeat_interleave(per_context, 0)
    shape = (contexts, per_context, CHUNK, len(CHANNELS))
    true_a = sample_chunks(rep, gen).chunks.view(shape)
    true_b = sample_chunks(rep, gen).chunks.view(shape)
    return ctx, true_a, true_b


def generate(run, ctx, per_context: int, steps: int, seed: int):
    """per_context samples per context from a trained run, in physical units: [E,N,T,9]."""
    import torch

    from lekiwi_drift.bench.toy_data import CHANNELS, CHUNK

    e = ctx.shape[0]
    gen = torch.Generator().manual_seed(30_000 + seed)
    eps = torch.randn(e * per_context, CHUNK, len(CHANNELS), generator=gen)
    rep = ctx.repeat_interleave(per_context, 0)
    with torch.no_grad():  # evaluated in fp32 for every run: the comparison is about training
        z = (
            run.model.one_step(rep, eps)
            if steps == 1 and run.spec.objective == "drift"
            else (run.model.flow_sample(rep, eps, steps))
        )
    return (z * run.std + run.mean).view(e, per_context, CHUNK, len(CHANNELS))


def run_study(args, progress=print, on_steps=None) -> dict:
    """Train and evaluate every run; returns {"rows": {name: [metrics per seed]}, "meta": ...}.
    `progress`: a line per trained run; `on_steps(n)`: n more optimiser steps done (a progress bar)."""
    from lekiwi_drift.bench.toy_data import normalisation_stats
    from lekiwi_drift.bench.toy_metrics import sample_metrics
    from lekiwi_drift.bench.toy_train import train

    specs = plan(args)
    ctx, true_a, true_b = heldout(args.contexts, args.per_context)
    # The floor: fresh true draws scored against the eval set, with the eval set's own std scale.
    _, std_true = normalisation_stats(true_a.flatten(0, 1))
    rows: dict[str, list[dict]] = {"true sampler": [sample_metrics(true_b, true_a, ctx, std_true)]}
    runs_meta, examples = [], {}
    t_start = time.perf_counter()
    for i, spec in enumerate(specs, 1):
        done = 0

        def step() -> None:
            nonlocal done
            done += 1
            on_steps(1)

        run = train(spec, on_step=step if on_steps is not None else None)
        if on_steps is not None and done < spec.steps:
            on_steps(spec.steps - done)  # a diverged run stops early: the bar still adds up
        for name, steps in samplers_for(spec):
            gen = generate(run, ctx, args.per_context, steps, spec.seed)
            m = sample_metrics(gen, true_a, ctx, run.std)
            m.update(train_s=run.seconds, final_loss=run.final_loss, diverged=run.diverged, seed=spec.seed)
            rows.setdefault(name, []).append(m)
            if spec.seed == 0:
                examples[name] = gen
        runs_meta.append(
            {
                "name": spec.name,
                "seed": spec.seed,
                "seconds": run.seconds,
                "final_loss": run.final_loss,
                "diverged": run.diverged,
            }
        )
        progress(
            f"[{i:>2}/{len(specs)}] {spec.name:<26} seed {spec.seed}: {spec.steps} steps in "
            f"{run.seconds:5.1f} s, final loss {run.final_loss:.4g}"
            f"{'  DIVERGED' if run.diverged else ''}  (elapsed {time.perf_counter() - t_start:5.0f} s)"
        )
    examples["true sampler"] = true_a
    meta = {
        "seeds": args.seeds,
        "steps": args.steps,
        "batch": args.batch,
        "samples": args.samples,
        "contexts": args.contexts,
        "per_context": args.per_context,
        "threads": args.threads,
        "bf16_groupings": args.bf16_groupings,
        "wall_s": time.perf_counter() - t_start,
        "runs": runs_meta,
    }
    return {"rows": rows, "meta": meta, "examples": examples, "contexts": ctx}


def run(args) -> int:
    import torch

    from lekiwi_drift.bench.toy_report import format_table, summarise, write_plots
    from lekiwi_drift.progress import bar

    if args.quick:
        args.seeds, args.steps, args.batch, args.contexts, args.per_context = 2, 20, 16, 8, 32
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        print(
            f"lekiwi-drift bench toy: {args.seeds} seeds, {args.steps} steps x {args.batch} obs x G={args.samples}, "
            f"eval {args.contexts} contexts x {args.per_context} samples, {args.threads} thread(s)",
            flush=True,
        )
        # Each run trains silently for up to minutes: a bar of optimiser steps on stderr, the per-run
        # lines (results) on stdout through the bar, so the two do not tear each other on a terminal.
        with bar(sum(s.steps for s in plan(args)), "training", unit="step") as pbar:
            study = run_study(args, progress=lambda line: pbar.write(line, file=sys.stdout), on_steps=pbar.update)
    finally:
        torch.set_num_threads(threads)
    summary = summarise(study["rows"])
    print(format_table(summary))
    print(f"total {study['meta']['wall_s']:.0f} s")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "toy_results.json").write_text(
            json.dumps({"meta": study["meta"], "summary": summary, "per_seed": study["rows"]}, indent=2)
        )
        for path in write_plots(summary, study["examples"], study["contexts"], out):
            print(f"wrote {path}")
        print(f"wrote {out / 'toy_results.json'}")
    return 0
