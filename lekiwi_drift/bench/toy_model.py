"""A small conditional generator with the policy's one-step interface (for `bench toy`).

Same parametrisation as `lekiwi_drift.policy.generator`: a velocity net v(x, t | context) in SmolVLA's
flow convention (x_t = t*noise + (1-t)*action, u = noise - action, t = 1 is pure noise), and

    one-step chunk(eps) = eps - v(eps, t=1 | context)

so drift training, FM-1 and FM-10 sampling all use one network. The net is a residual MLP over the
flattened (normalised) chunk, a context embedding and a sinusoidal time embedding: big enough to
represent context-dependent multimodal chunks, small enough to train dozens of times on a laptop CPU.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def time_features(t: torch.Tensor, n_freq: int = 8) -> torch.Tensor:
    """Sinusoidal features of t [N] in [0,1] -> [N, 2*n_freq]."""
    freqs = math.pi * (2.0 ** torch.arange(n_freq, dtype=torch.float32, device=t.device))
    ang = t.float()[:, None] * freqs[None, :]
    return torch.cat([ang.sin(), ang.cos()], dim=1)


class _Block(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.fc2(nn.functional.silu(self.fc1(self.norm(h))))


class ToyGenerator(nn.Module):
    """v(x, t | context): x [N,T,D] normalised chunk, t [N], context [N,C] -> velocity [N,T,D]."""

    def __init__(self, chunk: int, dim: int, context_dim: int, width: int = 256, blocks: int = 3):
        super().__init__()
        self.chunk, self.dim = chunk, dim
        self.ctx = nn.Sequential(nn.Linear(context_dim, 64), nn.SiLU(), nn.Linear(64, 64))
        self.inp = nn.Linear(chunk * dim + 64 + 16, width)
        self.blocks = nn.ModuleList(_Block(width) for _ in range(blocks))
        self.out_norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, chunk * dim)
        # A linear path from x straight to v. The one-step output is eps - v(eps), so v must carry the
        # whole 450-D noise through to cancel it; through a 256-wide trunk alone it cannot (SmolVLA's
        # expert has a 720-wide residual stream per action token for this). Identity init: v starts as
        # x + trunk, so a few hundred Adam steps (each moving a weight by about lr) suffice; every
        # objective starts from the same init.
        self.skip = nn.Linear(chunk * dim, chunk * dim)
        nn.init.eye_(self.skip.weight)
        nn.init.zeros_(self.skip.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        h = torch.cat([x.flatten(1), self.ctx(context), time_features(t)], dim=1)
        h = self.inp(h)
        for block in self.blocks:
            h = block(h)
        return (self.out(self.out_norm(h)) + self.skip(x.flatten(1))).view(-1, self.chunk, self.dim)

    def one_step(self, context: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The one-step generator (drift sampler, and FM-1): eps - v(eps, t=1)."""
        t_one = torch.ones(noise.shape[0], device=noise.device)
        return noise - self(noise, t_one, context)

    def flow_sample(self, context: torch.Tensor, noise: torch.Tensor, steps: int) -> torch.Tensor:
        """Euler integration from t=1 (noise) to t=0 in `steps` equal steps, as SmolVLA samples."""
        x, dt = noise, -1.0 / steps
        for i in range(steps):
            t = torch.full((noise.shape[0],), 1.0 + i * dt, device=noise.device)
            x = x + dt * self(x, t, context)
        return x


def flow_matching_loss(model: ToyGenerator, context: torch.Tensor, actions: torch.Tensor, gen: torch.Generator):
    """SmolVLA's flow-matching loss: t ~ Beta(1.5, 1)*0.999 + 0.001, MSE(v(x_t, t), noise - actions)."""
    n = actions.shape[0]
    noise = torch.randn(actions.shape, generator=gen)
    # Beta(a, 1) has CDF x^a, so U^(1/a) draws it from our own seeded generator
    # (torch.distributions.Beta takes no generator).
    t = torch.rand(n, generator=gen).pow(1 / 1.5) * 0.999 + 0.001
    x_t = t[:, None, None] * noise + (1 - t[:, None, None]) * actions
    v = model(x_t, t, context)
    return (v.float() - (noise - actions)).square().mean()
