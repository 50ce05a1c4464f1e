"""`bench keystone`: its loop baseline is KeyStone (same picks as keystone_select), and a short run
prints the side-by-side table for B = 1 and B = 16."""

from __future__ import annotations

import argparse

import pytest
import torch

from lekiwi_drift.bench import keystone as bench
from lekiwi_drift.policy.keystone import keystone_select


@pytest.mark.parametrize(("k", "clusters"), [(8, 4), (4, 2)])
def test_loop_baseline_picks_what_keystone_select_picks(k, clusters):
    gen = torch.Generator().manual_seed(k)
    tight = torch.randn(64, 1, 60, generator=gen) + 0.05 * torch.randn(64, k, 60, generator=gen)
    tight[:, 0] = tight.mean(1)  # a candidate at the mean: the guard fires
    x = torch.cat([tight, bench._candidates(torch, 64, k, 60, seed=k)]).double()
    idx, info = keystone_select(x, clusters)
    assert info["guard_fired"].any() and (~info["guard_fired"]).any()
    assert bench.loop_numpy(x.numpy(), clusters) == idx.tolist()


def test_short_run_prints_batched_and_loop_side_by_side(capsys):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    assert bench.run(parser.parse_args(["--repeats", "3", "--warmup", "1", "--threads", "1"])) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("| case |"))
    for column in (*bench.COLUMNS, "keystone_select / loop baseline", "torch batched path / loop baseline"):
        assert column in header
    rows = {line.split(" | ")[0]: line for line in out.splitlines() if line.startswith("| B=")}
    assert set(rows) == {"| B=1", "| B=16"}
    ratio = float(rows["| B=16"].split(" | ")[len(bench.COLUMNS) + 1])
    assert ratio > 0
