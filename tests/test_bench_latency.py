"""`bench latency` on the TINY model: end to end with every variant, the stock baseline really shares
our weights, the batched-vision lever keeps the outputs, and peak memory is measured per variant (each
in a fresh process). Never needs a GPU."""

from __future__ import annotations

import argparse
import json
import re

import pytest
import torch
from PIL import Image

pytest.importorskip("lerobot.policies.smolvla")

import lekiwi_drift.policy  # noqa: E402,F401  (registers smolvla_drift)

VARIANTS = ("drift-1", "FM-10", "FM-1", "drift+KS K=8", "drift+KS K=8, stock pass", "stock FM-10", "stock FM-1")


@pytest.fixture(scope="module")
def tiny_pair(tiny_vlm_dir):
    from lekiwi_drift.bench.latency_models import build_policies, make_batch, make_config

    cfg = make_config(tiny_vlm_dir, tiny=True, cameras=3, height=64, width=64, device="cpu")
    ours, stock = build_policies(cfg, torch.float32)
    return ours, stock, make_batch(ours, 3, 64, 64)


def test_stock_baseline_shares_our_weights_and_matches_fm10(tiny_pair):
    ours, stock, batch = tiny_pair
    ours_sd, stock_sd = ours.state_dict(), stock.state_dict()
    assert ours_sd.keys() == stock_sd.keys()
    assert all(ours_sd[k].data_ptr() == stock_sd[k].data_ptr() for k in ours_sd)
    noise = torch.randn(
        1, ours.config.chunk_size, ours.config.max_action_dim, generator=torch.Generator().manual_seed(0)
    )
    ours.config.sampler, ours.config.flow_steps, ours.config.keystone_samples = "flow", 10, 1
    ours.config.validate()
    stock.config.num_steps = 10
    a = ours.predict_action_chunk(dict(batch), noise=noise)
    b = stock.predict_action_chunk(dict(batch), noise=noise)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    ours.config.sampler = "drift"
    ours.config.validate()


def test_batched_vision_keeps_outputs(tiny_pair):
    ours, _, batch = tiny_pair
    noise = torch.randn(
        1, ours.config.chunk_size, ours.config.max_action_dim, generator=torch.Generator().manual_seed(1)
    )
    calls = []
    vision = ours.model.vlm_with_expert.get_vlm_model().vision_model
    hook = vision.register_forward_hook(
        lambda module, args, kwargs, out: calls.append(kwargs["pixel_values"].shape[0]), with_kwargs=True
    )
    try:
        ours.config.batch_vision = False
        plain = ours.predict_action_chunk(dict(batch), noise=noise)
        assert calls == [1, 1, 1], "stock layout: one vision call per camera"
        calls.clear()
        ours.config.batch_vision = True
        fast = ours.predict_action_chunk(dict(batch), noise=noise)
    finally:
        hook.remove()
        ours.config.batch_vision = True
    assert calls == [3], "three cameras must go through ONE vision call"
    torch.testing.assert_close(fast, plain, rtol=0, atol=1e-5)  # stated tolerance: 1e-5 absolute


@pytest.mark.parametrize("special_tokens", [False, True])
def test_batched_prefix_is_stock_layout(tiny_vlm_dir, special_tokens):
    """Same tokens, pad masks and attention masks as stock `embed_prefix`, with and without SmolVLA's
    image start/end tokens."""
    from lerobot.policies.smolvla.modeling_smolvla import VLAFlowMatching

    from lekiwi_drift.bench.latency_models import build_policies, make_batch, make_config

    cfg = make_config(tiny_vlm_dir, tiny=True, cameras=3, height=64, width=64, device="cpu")
    cfg.add_image_special_tokens = special_tokens
    ours, _ = build_policies(cfg, torch.float32)
    inputs = ours._prefix_inputs(make_batch(ours, 3, 64, 64))
    with torch.no_grad():
        batched = ours.model.embed_prefix(*inputs[:4], state=inputs[4])
        stock = VLAFlowMatching.embed_prefix(ours.model, *inputs[:4], state=inputs[4])
    torch.testing.assert_close(batched[0], stock[0], rtol=0, atol=1e-5)
    assert torch.equal(batched[1], stock[1]) and torch.equal(batched[2], stock[2])


def test_bench_runs_end_to_end_with_every_variant(tiny_vlm_dir, tmp_path, capsys):
    from lekiwi_drift.bench import latency

    parser = argparse.ArgumentParser()
    latency.add_arguments(parser)
    # --no-memory: the per-variant memory processes are tested on their own below (each one imports
    # torch and LeRobot and builds the model again, minutes for all seven on a loaded 2-core box).
    args = parser.parse_args(
        [
            "--tiny",
            "--rounds",
            "1",
            "--warmup",
            "1",
            "--threads",
            "1",
            "--no-memory",
            "--vlm-dir",
            str(tiny_vlm_dir),
            "--out",
            str(tmp_path),
        ]
    )
    assert latency.run(args) == 0
    out = capsys.readouterr().out
    for label in (
        "ours drift-1",
        "ours FM-10",
        "ours FM-1",
        "ours drift+KS K=8",
        "ours drift+KS K=8, stock pass",
        "LeRobot FM-10",
        "LeRobot FM-1",
    ):
        assert f"| {label} |" in out
    # The shared-prefix pass is checked against SmolVLA's stock pass before timing.
    # The verdict must be the comparison of this run's own difference with the tolerance it prints.
    check = re.search(
        r"shared vs stock pass, drift K=8 candidates: max \|diff\| (\S+) \((met|MISSED); tolerance (\S+) ", out
    )
    assert check is not None, out
    diff, verdict, tol = float(check[1]), check[2], float(check[3])
    assert verdict == "met" and diff <= tol
    assert "KeyStone overhead" in out and "FM-10 / drift-1" in out
    data = json.loads((tmp_path / "latency.json").read_text())
    assert data["meta"]["shared_vs_stock_pass"]["drift K=8 candidates"] == pytest.approx(diff, rel=0.01)
    assert set(data["rows"]) == set(VARIANTS)
    for row in data["rows"].values():
        assert row["total"] > 0 and row["prefix"] > 0 and row["expert"] > 0 and "peak_mib" not in row
    assert "peak RSS, own process" not in out and data["meta"]["memory"] is None
    assert data["rows"]["drift+KS K=8"]["keystone"] > 0
    with Image.open(tmp_path / "latency.png") as img:  # matplotlib, fixed pixel size (charts.py)
        assert img.format == "PNG" and img.size == (1200, 460)


def test_peak_rss_is_measured_per_piece_of_work():
    """The CPU memory column's mechanism: each piece of work in its own fresh process, its setup's
    transient peak and the (large) parent excluded. A process-wide figure would be equal for both."""
    from lekiwi_drift.bench.memory import peak_in_fresh_process
    from tests.memory_helpers import allocate, setup_with_transient, touch

    parent = touch(300)  # noqa: F841  (a big parent must not show up in the child's figure)
    idle = peak_in_fresh_process(setup_with_transient, allocate, 200, 0)
    busy = peak_in_fresh_process(setup_with_transient, allocate, 200, 150)
    assert 0 <= idle["work_mib"] < 20, idle  # setup's 200 MiB were freed before the work and do not count
    assert idle["peak_mib"] < 150, idle  # neither the parent's 300 MiB nor setup's 200 MiB
    assert 145 <= busy["work_mib"] < 170, busy
    assert busy["peak_mib"] - idle["peak_mib"] > 140


@pytest.mark.slow
def test_cpu_memory_runs_a_variant_in_its_own_process(tiny_vlm_dir):
    """The bench's memory child for one variant: it builds the policies and runs a chunk on its own."""
    from lekiwi_drift.bench import latency

    v = next(v for v in latency.variants(8, 4) if v["name"] == "drift+KS K=8")
    settings = {
        "vlm_dir": str(tiny_vlm_dir),
        "tiny": True,
        "cameras": 3,
        "height": 64,
        "width": 64,
        "dtype": "float32",
        "threads": 1,
        "batch_vision": True,
        "compile": False,
    }
    lines = []
    memory = latency.cpu_memory([v], settings, progress=lines.append)
    m = memory["drift+KS K=8"]
    assert 0 < m["work_mib"] < m["peak_mib"]
    assert lines == [
        f"memory, own process: drift+KS K=8 peak RSS {m['peak_mib']:.0f} MiB "
        f"(+{m['work_mib']:.0f} over the built model)"
    ]


def test_table_shows_each_variants_own_memory():
    from lekiwi_drift.bench.latency_report import format_table

    row = {"who": "ours", "total": 10.0, "min_total": 9.0, "prefix": 8.0, "expert": 1.0, "keystone": 0.0, "other": 1.0}
    rows = {
        "drift-1": row | {"peak_mib": 900.0, "chunk_mib": 20.0},
        "drift+KS K=8": row | {"peak_mib": 1010.0, "chunk_mib": 130.0},
    }
    table = format_table({"rows": rows, "meta": {"device": "cpu"}})
    assert "| peak RSS, own process (MiB) |" in table.splitlines()[0]
    assert table.splitlines()[2].endswith("| 900 (+20) |") and table.splitlines()[3].endswith("| 1010 (+130) |")
    cuda = format_table({"rows": {"drift-1": row | {"peak_mib": 700.0}}, "meta": {"device": "cuda"}})
    assert cuda.splitlines()[2].endswith("| 700 |") and "peak GPU alloc" in cuda
    bare = format_table({"rows": {"drift-1": row}, "meta": {"device": "cpu"}})
    assert bare.splitlines()[0].endswith("| other |")


def test_bf16_backbone_runs_on_cpu(tiny_vlm_dir):
    """The GPU script's dtype path (bf16 VLM + expert, fp32 projections) has no dtype clash."""
    from lekiwi_drift.bench.latency_models import build_policies, make_batch, make_config

    cfg = make_config(tiny_vlm_dir, tiny=True, cameras=3, height=64, width=64, device="cpu")
    ours, stock = build_policies(cfg, torch.bfloat16)
    batch = make_batch(ours, 3, 64, 64)
    for sampler, k in (("drift", 1), ("drift", 8), ("flow", 1)):
        ours.config.sampler, ours.config.keystone_samples = sampler, k
        ours.config.validate()
        assert torch.isfinite(ours.predict_action_chunk(dict(batch))).all()
    assert torch.isfinite(stock.predict_action_chunk(dict(batch))).all()


def test_shared_vs_stock_verdict_reports_a_miss():
    """A difference above the tolerance reads MISSED (the check is not "met" by construction)."""
    from lekiwi_drift.bench.latency_report import checks

    row = {"total": 100.0, "prefix": 80.0, "expert": 10.0, "keystone": 1.0, "other": 10.0}
    names = ("drift-1", "FM-10", "FM-1", "stock FM-10", "stock FM-1", "drift+KS K=8")
    result = {"rows": {n: dict(row) for n in names}, "meta": {"device": "cpu", "dtype": "float32"}}
    for d, verdict in ((5e-5, "met"), (3e-3, "MISSED")):
        result["meta"]["shared_vs_stock_pass"] = {"drift K=8 candidates": d}
        line = next(x for x in checks(result) if "shared vs stock pass" in x)
        assert f"({verdict}; tolerance 0.0001" in line, line
