"""`lekiwi-drift bench latency`: per-chunk latency at full SmolVLA size, ours vs LeRobot's stock SmolVLA.

One process builds our `smolvla_drift` policy and a stock `SmolVLAPolicy` holding the same weights
(lekiwi_drift.bench.latency_models), feeds both one preprocessed observation (batch 1, three cameras
at 480x640 by default, chunk 50, 9-D actions) and times, per chunk (`predict_action_chunk`, wall clock,
CUDA-synchronised):

    ours  drift-1        one expert pass at t = 1
    ours  FM-10 / FM-1   SmolVLA's Euler loop, 10 / 1 steps
    ours  drift+KS       K = 8 one-step candidates in one batched expert pass, KeyStone with C = 4
    ours  drift+KS, stock pass   the same through SmolVLA's own `denoise_step` over the repeated
                         prefix (what `shared_prefix_expert` replaces; policy/shared_prefix.py)
    stock FM-10 / FM-1   LeRobot's SmolVLAPolicy, num_steps 10 / 1

Each chunk is split into prefix encoding (vision + language + state into the KV cache), expert passes,
KeyStone selection and other (image resize/pad, state padding, queue handling). Variants run
round-robin, the starting variant rotating each round, so machine-load noise hits all of them alike;
the table reports medians over the timed rounds. Before timing, the chunks of the shared-prefix pass
are checked against the stock pass for the same noise (max |difference|). Peak memory, per variant: on
CUDA `max_memory_allocated` around the variant's chunks (the caching allocator counts live tensors, so
it separates variants in one process); on CPU the peak RSS of a fresh process that builds the same
policies and runs one chunk of that variant only (lekiwi_drift.bench.memory: in one process RSS is a
high-water mark over every variant, and freed memory stays resident for the next one), with how far
that peak rose over the built model.
"""

from __future__ import annotations

import platform
import resource
import statistics
from pathlib import Path

HELP = "per-chunk latency at full SmolVLA size: drift-1, FM-10, FM-1, drift+KeyStone vs stock SmolVLA"
PARTS = ("prefix", "expert", "keystone", "other")


def add_arguments(parser) -> None:
    parser.add_argument("--rounds", type=int, default=6, help="timed rounds per variant (default: 6)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed warm-up rounds (default: 1)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=("float32", "bfloat16"),
        help="VLM + expert weights dtype (default: float32)",
    )
    parser.add_argument("--cameras", type=int, default=3, help="cameras (default: 3)")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--keystone", type=int, default=8, help="KeyStone candidates K (default: 8)")
    parser.add_argument("--clusters", type=int, default=4, help="KeyStone clusters C (default: 4)")
    parser.add_argument(
        "--no-batch-vision",
        action="store_true",
        help="ours: encode cameras one by one, as stock does (default: one batched call)",
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile the expert pass (ours and stock)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--tiny", action="store_true", help="tiny test VLM instead of full SmolVLA shapes")
    parser.add_argument("--vlm-dir", default=None, help="offline SmolVLM dir (default: written to ~/.cache)")
    parser.add_argument("--quick", action="store_true", help="2 timed rounds after 1 warm-up")
    parser.add_argument(
        "--no-memory",
        action="store_true",
        help="no peak-memory column (on CPU it costs one fresh process per variant: imports, "
        "model build and one chunk each, after the timed rounds)",
    )
    parser.add_argument("--out", default=None, help="folder for latency.json and latency.png")


def variants(k: int, clusters: int) -> list[dict]:
    return [
        {"name": "drift-1", "who": "ours", "sampler": "drift", "steps": 1, "k": 1},
        {"name": "FM-10", "who": "ours", "sampler": "flow", "steps": 10, "k": 1},
        {"name": "FM-1", "who": "ours", "sampler": "flow", "steps": 1, "k": 1},
        {"name": f"drift+KS K={k}", "who": "ours", "sampler": "drift", "steps": 1, "k": k, "c": clusters},
        {
            "name": f"drift+KS K={k}, stock pass",
            "who": "ours",
            "sampler": "drift",
            "steps": 1,
            "k": k,
            "c": clusters,
            "shared": False,
        },
        {"name": "stock FM-10", "who": "stock", "steps": 10},
        {"name": "stock FM-1", "who": "stock", "steps": 1},
    ]


def _configure(policy, v: dict) -> None:
    cfg = policy.config
    if v["who"] == "stock":
        cfg.num_steps = v["steps"]
        return
    cfg.sampler, cfg.flow_steps, cfg.keystone_samples = v["sampler"], v["steps"], v["k"]
    cfg.keystone_clusters = v.get("c", cfg.keystone_clusters)
    cfg.shared_prefix_expert = v.get("shared", True)
    cfg.validate()


def shared_vs_stock_pass(ours, batch: dict, k: int, clusters: int) -> dict[str, float]:
    """Max |chunk difference| between the shared-prefix expert pass and SmolVLA's stock pass, same
    noise: the K one-step candidates (all of them, not only the chosen one) and the FM-10 chunk."""
    import torch

    cfg = ours.config
    shape = (1, cfg.chunk_size, cfg.max_action_dim)
    g = torch.Generator().manual_seed(7)
    cases = {
        f"drift K={k} candidates": (
            {"sampler": "drift", "steps": 1, "k": k, "c": clusters},
            torch.randn(1, k, *shape[1:], generator=g),
        ),
        "FM-10 chunk": ({"sampler": "flow", "steps": 10, "k": 1}, torch.randn(*shape, generator=g)),
    }
    diffs = {}
    for name, (v, noise) in cases.items():
        out = []
        for shared in (True, False):
            _configure(ours, {**v, "who": "ours", "shared": shared})
            ours.reset()
            chunk = ours.predict_action_chunk(dict(batch), noise=noise.to(cfg.device))
            out.append(ours.last_candidates if v["k"] > 1 else chunk)
        diffs[name] = float((out[0].float() - out[1].float()).abs().max())
    return diffs


def time_chunk(v: dict, ours, stock, timer, batch: dict, device) -> dict:
    """One chunk of variant v: total and parts in ms, and peak memory in MiB."""
    import torch

    from lekiwi_drift.bench.latency_models import sync

    policy = ours if v["who"] == "ours" else stock
    _configure(policy, v)
    policy.reset()
    timer.reset()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = sync(device)
    chunk = policy.predict_action_chunk(dict(batch))
    total = (sync(device) - t0) * 1e3
    if v["who"] == "ours":
        info = policy.last_chunk_info
        prefix, expert, keystone = info["prefix_ms"], info["expert_ms"], info["keystone_ms"]
    else:
        (prefix, expert), keystone = timer.split_ms(), 0.0
    assert torch.isfinite(chunk).all(), f"{v['name']}: non-finite actions"
    m = {
        "total": total,
        "prefix": prefix,
        "expert": expert,
        "keystone": keystone,
        "other": max(0.0, total - prefix - expert - keystone),
    }
    if device.type == "cuda":
        m["peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return m


def memory_setup(settings: dict, v: dict):
    """In the memory child: the timed process's policies, levers and batch, configured for variant v.
    With --compile one chunk runs here, so compilation's own memory is not counted as the chunk's."""
    import torch

    from lekiwi_drift.bench.latency_models import build_policies, make_batch, make_config
    from lekiwi_drift.bench.levers import compile_expert

    s = settings
    if s["threads"]:
        torch.set_num_threads(s["threads"])
    cfg = make_config(Path(s["vlm_dir"]), s["tiny"], s["cameras"], s["height"], s["width"], "cpu")
    ours, stock = build_policies(cfg, getattr(torch, s["dtype"]))
    ours.config.batch_vision = s["batch_vision"]
    policy = ours if v["who"] == "ours" else stock
    _configure(policy, v)
    state = (policy, make_batch(ours, s["cameras"], s["height"], s["width"]))
    if s["compile"]:
        compile_expert(policy.model)
        memory_work(state)
    return state


def memory_work(state) -> None:
    import torch

    policy, batch = state
    policy.reset()
    with torch.inference_mode():
        assert torch.isfinite(policy.predict_action_chunk(dict(batch))).all()


def cpu_memory(vs: list[dict], settings: dict, progress=print) -> dict[str, dict]:
    """{variant: {"peak_mib", "work_mib"}}, each from a fresh process of its own (bench/memory.py)."""
    from lekiwi_drift.bench.memory import peak_in_fresh_process

    out = {}
    for v in vs:
        out[v["name"]] = m = peak_in_fresh_process(memory_setup, memory_work, settings, v)
        progress(
            f"memory, own process: {v['name']} peak RSS {m['peak_mib']:.0f} MiB "
            f"(+{m['work_mib']:.0f} over the built model)"
        )
    return out


def measure(args, progress=print) -> dict:
    import torch

    from lekiwi_drift.bench.latency_models import (
        StockTimer,
        build_policies,
        default_vlm_dir,
        ensure_vlm_dir,
        make_batch,
        make_config,
    )
    from lekiwi_drift.bench.levers import compile_expert

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    vlm_dir = ensure_vlm_dir(Path(args.vlm_dir) if args.vlm_dir else default_vlm_dir(args.tiny), args.tiny)
    height, width = (64, 64) if args.tiny else (args.height, args.width)
    cfg = make_config(vlm_dir, args.tiny, args.cameras, height, width, args.device)
    ours, stock = build_policies(cfg, dtype)
    n_params = sum(p.numel() for p in ours.parameters())
    ours.config.batch_vision = not args.no_batch_vision
    if args.compile:
        compile_expert(ours.model)
        compile_expert(stock.model)
    timer = StockTimer(stock.model, device)
    batch = {
        k: (v.to(device) if torch.is_tensor(v) else v) for k, v in make_batch(ours, args.cameras, height, width).items()
    }

    with torch.inference_mode():
        output_check = shared_vs_stock_pass(ours, batch, args.keystone, args.clusters)
    progress(
        "shared-prefix vs stock expert pass, same noise: "
        + ", ".join(f"{name} max |diff| {d:.2e}" for name, d in output_check.items())
    )
    vs = variants(args.keystone, args.clusters)
    samples: dict[str, list[dict]] = {v["name"]: [] for v in vs}
    total_rounds = args.warmup + args.rounds
    with torch.inference_mode():
        for r in range(total_rounds):
            order = vs[r % len(vs) :] + vs[: r % len(vs)]  # rotate the starting variant each round
            for v in order:
                m = time_chunk(v, ours, stock, timer, batch, device)
                if r >= args.warmup:
                    samples[v["name"]].append(m)
            tag = "warm-up" if r < args.warmup else "timed"
            progress(
                f"round {r + 1}/{total_rounds} ({tag}): "
                + ", ".join(
                    f"{v['name']} {samples[v['name']][-1]['total']:.0f} ms" if r >= args.warmup else v["name"]
                    for v in vs
                )
            )
    if device.type != "cuda" and not args.no_memory:
        memory = cpu_memory(
            vs,
            {
                "vlm_dir": str(vlm_dir),
                "tiny": args.tiny,
                "cameras": args.cameras,
                "height": height,
                "width": width,
                "dtype": args.dtype,
                "threads": args.threads,
                "batch_vision": not args.no_batch_vision,
                "compile": args.compile,
            },
            progress,
        )
    rows = {}
    for v in vs:
        runs = samples[v["name"]]
        row = {k: statistics.median(m[k] for m in runs) for k in ("total", *PARTS)}
        row["min_total"] = min(m["total"] for m in runs)
        if device.type == "cuda" and not args.no_memory:
            row["peak_mib"] = max(m["peak_mib"] for m in runs)
        elif not args.no_memory:
            row["peak_mib"], row["chunk_mib"] = memory[v["name"]]["peak_mib"], memory[v["name"]]["work_mib"]
        row["who"] = v["who"]
        rows[v["name"]] = row
    meta = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "dtype": args.dtype,
        "cameras": args.cameras,
        "image": [height, width],
        "chunk": cfg.chunk_size,
        "action_dim": 9,
        "batch": 1,
        "params_m": n_params / 1e6,
        "tiny": args.tiny,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "batch_vision": not args.no_batch_vision,
        "compile": args.compile,
        "keystone": args.keystone,
        "clusters": args.clusters,
        "shared_vs_stock_pass": output_check,
        "process_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "memory": None
        if args.no_memory
        else "max_memory_allocated per variant"
        if device.type == "cuda"
        else "peak RSS (VmHWM) of a fresh process per variant; chunk_mib = its rise over the built model",
    }
    return {"meta": meta, "rows": rows, "samples": samples}


def run(args) -> int:
    from lekiwi_drift.bench.latency_report import checks, format_table, save

    if args.quick:
        args.rounds, args.warmup = 2, 1
    size = "TINY test model" if args.tiny else "full SmolVLA shapes (SmolVLM2-500M, random weights)"
    print(
        f"lekiwi-drift bench latency: {size}, {args.device} {args.dtype}, {args.cameras} cameras, "
        f"{args.warmup} warm-up + {args.rounds} timed rounds, round-robin",
        flush=True,
    )
    result = measure(args, progress=lambda line: print(line, flush=True))
    meta = result["meta"]
    print(
        f"\n{meta['device_name']}; {meta['params_m']:.0f} M parameters; batched vision: {meta['batch_vision']}; "
        f"compile: {meta['compile']}; this process's peak RSS (every variant) {meta['process_peak_rss_mib']:.0f} MiB"
    )
    print(format_table(result))
    for line in checks(result):
        print("- " + line)
    if args.out:
        for path in save(result, Path(args.out)):
            print(f"wrote {path}")
    return 0
