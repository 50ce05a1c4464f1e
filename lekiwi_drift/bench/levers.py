"""Latency levers the bench can switch on that keep the policy's outputs.

- Batched vision (all cameras in one vision-tower call) is part of our policy itself: config
  `batch_vision`, `DriftFlowMatching.embed_prefix`; the bench's `--no-batch-vision` turns it off.
- The shared-prefix expert pass likewise: config `shared_prefix_expert` (policy/shared_prefix.py).
- `compile_expert(model)`: `torch.compile` the expert pass, the part repeated 10x by FM-10 and batched
  K-wide by KeyStone. Ours compiles its shared-prefix pass through `DriftFlowMatching.compile_expert`.
  LeRobot's stock model has no such switch, so for the baseline the bench wraps its `denoise_step` in
  `torch.compile` on that one instance (an instance attribute). Meant for a GPU; graph breaks around
  the KV cache are allowed (not fullgraph), so it stays correct where it cannot fuse.
"""

from __future__ import annotations

import torch


def compile_expert(model, mode: str | None = None) -> None:
    """`torch.compile` the action-expert pass of `model` (ours or stock SmolVLA's `VLAFlowMatching`)."""
    if hasattr(model, "compile_expert"):
        model.compile_expert(mode)
        return
    current = model.__dict__.get("denoise_step", type(model).denoise_step.__get__(model))
    model.denoise_step = torch.compile(current, mode=mode, dynamic=False)
