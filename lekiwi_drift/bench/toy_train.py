"""Training runs for `bench toy`: one objective, one grouping, one precision, one seed per call.

Precisions:
- "fp32": everything in fp32.
- "bf16-guard": the generator runs under bf16 autocast; the drift target is computed by the library's
  `drift_loss`, which lifts the field computation to fp32 with autocast off (the paper's fp32 guard).
- "bf16-noguard": the same, but the target comes from `drift_loss_unguarded(..., dtype=bfloat16)`,
  a direct transcription of the drift-field steps (docs/design.md#the-drift-loss) that computes
  distances, affinities, forces and the target g/s + V in bf16. It emulates a drift loss without the
  guard; the library's default is untouched. With dtype=float32 it reproduces `drift_loss` (tests check
  this), so the only difference between the two bf16 arms is the precision of the target.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from lekiwi_drift.bench.toy_data import (
    CHANNELS,
    CHUNK,
    CONTEXT_DIM,
    normalisation_stats,
    sample_chunks,
    sample_contexts,
)
from lekiwi_drift.bench.toy_model import ToyGenerator, flow_matching_loss
from lekiwi_drift.policy.drift import DEFAULT_TEMPERATURES, drift_loss, to_units

PRECISIONS = ("fp32", "bf16-guard", "bf16-noguard")


@dataclass(frozen=True)
class RunSpec:
    objective: str  # "drift" or "flow"
    grouping: str = "action_dim"  # drift only
    precision: str = "fp32"
    seed: int = 0
    steps: int = 300
    batch: int = 64  # observations per step
    samples: int = 8  # G: live samples per observation (flow uses B*G noised copies: same rows per step)
    lr: float = 2e-3
    train_size: int = 4096  # demonstrations in the fixed training set

    @property
    def name(self) -> str:
        base = "flow" if self.objective == "flow" else f"drift-{self.grouping}"
        return base if self.precision == "fp32" else f"{base} [{self.precision}]"


@dataclass
class TrainedRun:
    spec: RunSpec
    model: ToyGenerator
    mean: torch.Tensor  # per-dimension normalisation (physical = norm * std + mean)
    std: torch.Tensor
    final_loss: float
    seconds: float
    diverged: bool


def drift_loss_unguarded(
    gen: torch.Tensor,
    demo: torch.Tensor,
    grouping: str,
    temperatures: tuple[float, ...] = DEFAULT_TEMPERATURES,
    dtype: torch.dtype = torch.bfloat16,
) -> torch.Tensor:
    """The drift loss with every step of the target computed in `dtype` (no fp32 guard, no padding).

    Follows the four steps of docs/design.md#the-drift-loss literally (no Gram trick, no centring, no
    exp floor): what a straightforward implementation under bf16 autocast would compute.
    """
    g_live, a, _ = to_units(gen, demo, None, grouping)  # [U,B,G,S], [U,B,S]
    n_gen, size = g_live.shape[2], g_live.shape[3]
    with torch.no_grad():
        g = g_live.detach().to(dtype)
        y = torch.cat([g, a.detach().to(dtype).unsqueeze(2)], dim=2)  # [U,B,G+1,S]
        dist = (g.unsqueeze(3) - y.unsqueeze(2)).square().sum(-1).sqrt()  # [U,B,G,G+1]
        s_bar = dist.mean((1, 2, 3)).clamp_min(1e-3)  # [U]: over every problem of the group
        s = (s_bar / math.sqrt(size)).clamp_min(1e-3)
        eye = torch.eye(n_gen, n_gen + 1, dtype=dtype, device=g.device) * 100.0
        d_hat = dist / s_bar[:, None, None, None] + eye
        field = torch.zeros_like(g)
        for tau in temperatures:
            logits = -d_hat / tau
            aff = (logits.softmax(-1) * logits.softmax(-2)).clamp_min(1e-6).sqrt()
            a_neg, a_pos = aff[..., :n_gen], aff[..., n_gen:]
            w = torch.cat([-a_neg * a_pos.sum(-1, keepdim=True), a_pos * a_neg.sum(-1, keepdim=True)], -1)
            # F_i = sum_j W_ij (y_j - g_i) / s
            force = (w @ y - w.sum(-1, keepdim=True) * g) / s[:, None, None, None]
            rms = force.square().mean((1, 2, 3)).sqrt().clamp_min(1e-12)
            field = field + force / rms[:, None, None, None]
        goal = g / s[:, None, None, None] + field  # the target, rounded to `dtype`
    pred = g_live.to(dtype) / s[:, None, None, None]
    return (pred - goal).to(torch.promote_types(dtype, torch.float32)).square().mean()


def _autocast(precision: str):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision != "fp32")


def _loss(spec: RunSpec, model: ToyGenerator, ctx, demo, gen: torch.Generator) -> torch.Tensor:
    b, g = ctx.shape[0], spec.samples
    ctx_rep = ctx.repeat_interleave(g, 0)
    with _autocast(spec.precision):
        if spec.objective == "flow":
            return flow_matching_loss(model, ctx_rep, demo.repeat_interleave(g, 0), gen)
        eps = torch.randn(b * g, CHUNK, len(CHANNELS), generator=gen)
        chunks = model.one_step(ctx_rep, eps).view(b, g, CHUNK, len(CHANNELS))
        if spec.precision == "bf16-noguard":
            return drift_loss_unguarded(chunks, demo, spec.grouping)
        loss, _ = drift_loss(chunks, demo, grouping=spec.grouping)
        return loss


def train(spec: RunSpec, on_step: Callable[[], object] | None = None) -> TrainedRun:
    """Train one generator. The data set depends on the seed only, so every method of a seed sees the
    same demonstrations; init and noise are seeded too, so a run is reproducible. `on_step`: called
    after every optimiser step (a progress bar)."""
    data_gen = torch.Generator().manual_seed(10_000 + spec.seed)
    contexts = sample_contexts(spec.train_size, data_gen)
    chunks = sample_chunks(contexts, data_gen).chunks
    mean, std = normalisation_stats(chunks)
    normed = (chunks - mean) / std

    torch.manual_seed(spec.seed)  # parameter init
    model = ToyGenerator(CHUNK, len(CHANNELS), CONTEXT_DIM)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=1e-4)
    warm = max(1, spec.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * i / spec.steps)))
    )
    gen = torch.Generator().manual_seed(20_000 + spec.seed)
    t0, last, diverged = time.perf_counter(), float("nan"), False
    model.train()
    for _ in range(spec.steps):
        idx = torch.randint(spec.train_size, (spec.batch,), generator=gen)
        loss = _loss(spec, model, contexts[idx], normed[idx], gen)
        if not torch.isfinite(loss):
            diverged = True  # reported, not hidden: the run keeps its last finite weights
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        last = loss.item()
        if on_step is not None:
            on_step()
    model.eval()
    return TrainedRun(spec, model, mean, std, last, time.perf_counter() - t0, diverged)
