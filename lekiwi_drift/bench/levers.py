"""Latency levers that keep the policy's outputs, installed on a live SmolVLA / smolvla_drift model.

- `batch_vision(model)`: encode all cameras in ONE vision-tower call instead of one call per camera.
  Stock `embed_prefix` loops over cameras and calls `embed_image` on each [B,3,H,W] image; here the
  cameras are concatenated along the batch, encoded once, and handed back to the unchanged stock
  `embed_prefix` one by one, so token layout, masks and scaling are exactly stock. The vision tower
  treats batch rows independently, so outputs equal the per-camera path up to kernel-level float
  differences (tests/test_bench_latency.py checks the chunk to a tolerance on the tiny model). On a
  GPU this turns 3 x 12 layers of small launches into 12 layers of one bigger batch; on a CPU the
  work is the same FLOPs, so expect no gain there.
- `compile_expert(model)`: `torch.compile` the expert pass (ours: the shared-prefix pass, via
  `DriftFlowMatching.compile_expert`; stock: `denoise_step`), the part repeated 10x by FM-10 and
  batched K-wide by KeyStone. Meant for a GPU; graph breaks around the KV cache are allowed
  (not fullgraph), so it stays correct where it cannot fuse.

Both shadow methods with instance attributes; the class and other instances are untouched, and
`remove_levers(model)` restores the stock methods.
"""

from __future__ import annotations

import torch

_PATCHED = ("embed_prefix", "denoise_step")


def batch_vision(model) -> None:
    """Make `model.embed_prefix` encode every camera in one batched vision call (see module doc)."""
    stock_embed_prefix = type(model).embed_prefix.__get__(model)
    tower = model.vlm_with_expert

    def embed_prefix(images, img_masks, lang_tokens, lang_masks, state=None):
        if len(images) < 2 or len({tuple(img.shape) for img in images}) != 1:
            return stock_embed_prefix(images, img_masks, lang_tokens, lang_masks, state=state)
        bsize = images[0].shape[0]
        encoded = iter(tower.embed_image(torch.cat(images, dim=0)).split(bsize, dim=0))
        # Stock embed_prefix calls tower.embed_image(img) once per camera, in order: serve the
        # precomputed rows instead (an instance attribute shadows the method for this call only).
        tower.embed_image = lambda img: next(encoded)
        try:
            return stock_embed_prefix(images, img_masks, lang_tokens, lang_masks, state=state)
        finally:
            del tower.embed_image

    model.embed_prefix = embed_prefix


def compile_expert(model, mode: str | None = None) -> None:
    """`torch.compile` the action-expert pass: ours through its own `compile_expert` (the shared-prefix
    pass); stock SmolVLA by wrapping `model.denoise_step`."""
    if hasattr(model, "compile_expert"):
        model.compile_expert(mode)
        return
    current = model.__dict__.get("denoise_step", type(model).denoise_step.__get__(model))
    model.denoise_step = torch.compile(current, mode=mode, dynamic=False)


def remove_levers(model) -> None:
    for name in (*_PATCHED, "_compiled_velocity"):
        model.__dict__.pop(name, None)
