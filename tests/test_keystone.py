"""KeyStone against a plain loop written from docs/design.md#keystone, plus its defining properties."""

from __future__ import annotations

import math

import pytest
import torch

from lekiwi_drift.policy.keystone import MAX_LLOYD_STEPS, flatten_real, keystone_select

PATHS = ("numpy", "torch")  # keystone_select(impl=...), both checked everywhere


def reference_keystone(x: torch.Tensor, clusters: int = 4, tau: float = 0.3):
    """One observation's candidates x [K,F]; returns (index, spread, guard_fired, cluster_size).

    Rules the paper leaves open, as fixed in keystone.py: lower median for an even count, ties to
    the lowest index, an empty cluster keeps its centroid, C = min(clusters, K).
    """
    k = x.shape[0]
    d = [[float(torch.linalg.vector_norm(x[i] - x[j])) for j in range(k)] for i in range(k)]
    totals = [sum(row) for row in d]
    medoid = min(range(k), key=lambda i: (totals[i], i))
    pairs = sorted(d[i][j] for i in range(k) for j in range(i + 1, k))
    median = pairs[(len(pairs) - 1) // 2]
    spread = float(torch.linalg.vector_norm(x.mean(0) - x[medoid])) / (median + 1e-8)
    if spread < tau:
        return medoid, spread, True, k

    n_clusters = min(clusters, k)
    centroids = [x[c].clone() for c in range(n_clusters)]

    def assign():
        out = []
        for i in range(k):
            sq = [float(((x[i] - c) ** 2).sum()) for c in centroids]
            out.append(min(range(n_clusters), key=lambda c: (sq[c], c)))
        return out

    previous = None
    for step in range(MAX_LLOYD_STEPS):
        labels = assign()
        if labels == previous:
            break
        reference_keystone.steps_used = step + 1
        for c in range(n_clusters):
            members = [i for i in range(k) if labels[i] == c]
            if members:
                centroids[c] = torch.stack([x[i] for i in members]).mean(0)
        previous = labels
    labels = assign()
    sizes = [labels.count(c) for c in range(n_clusters)]
    largest = max(range(n_clusters), key=lambda c: (sizes[c], -c))
    members = [i for i in range(k) if labels[i] == largest]
    best = min(members, key=lambda i: (sum(d[i][j] for j in members), i))
    return best, spread, False, sizes[largest]


def _unimodal(k, f, gen):
    # A tight blob stretched along one direction: the medoid sits near the mean.
    base = torch.randn(f, generator=gen, dtype=torch.float64)
    direction = torch.randn(f, generator=gen, dtype=torch.float64)
    t = torch.linspace(-1, 1, k, dtype=torch.float64)[torch.randperm(k, generator=gen)]
    return base + t[:, None] * direction + 0.01 * torch.randn(k, f, generator=gen, dtype=torch.float64)


def _multimodal(k, f, gen, modes=2):
    centers = 5 * torch.randn(modes, f, generator=gen, dtype=torch.float64)
    which = torch.randint(0, modes, (k,), generator=gen)
    return centers[which] + torch.randn(k, f, generator=gen, dtype=torch.float64)


def _check_against_reference(x, clusters=4, tau=0.3):
    """Both implementations (keystone.py's module docstring) against the loop reference."""
    results = {impl: keystone_select(x, clusters=clusters, tau=tau, impl=impl) for impl in PATHS}
    for b in range(x.shape[0]):
        ref_idx, ref_spread, ref_guard, ref_size = reference_keystone(x[b], clusters, tau)
        for impl, (idx, info) in results.items():
            assert int(idx[b]) == ref_idx, f"row {b}, {impl}"
            assert math.isclose(float(info["spread"][b]), ref_spread, rel_tol=1e-9), impl
            assert bool(info["guard_fired"][b]) == ref_guard, impl
            assert int(info["cluster_size"][b]) == ref_size, impl
    return results["numpy"]


def test_matches_reference_on_unimodal_and_multimodal_sets():
    gen = torch.Generator().manual_seed(0)
    sets = [_unimodal(8, 450, gen) for _ in range(12)]
    sets += [_multimodal(8, 450, gen, modes=m) for m in (2, 3, 4) for _ in range(12)]
    sets += [torch.randn(8, 450, generator=gen, dtype=torch.float64) for _ in range(12)]
    x = torch.stack(sets)
    _, info = _check_against_reference(x)
    assert info["guard_fired"].any() and (~info["guard_fired"]).any()  # both paths exercised


@pytest.mark.parametrize(("k", "clusters"), [(5, 4), (12, 4), (6, 2), (3, 8)])
def test_matches_reference_for_other_sizes(k, clusters):
    gen = torch.Generator().manual_seed(k)
    x = torch.stack([_multimodal(k, 30, gen, modes=3) for _ in range(16)])
    _check_against_reference(x, clusters=clusters)


def test_matches_reference_on_slow_converging_low_dimensional_sets():
    # Uniform points in the plane: many Lloyd steps, empty clusters, and clusters whose most central
    # point (by distance to the members) is not a member.
    gen = torch.Generator().manual_seed(4)
    x = torch.rand(300, 12, 2, generator=gen, dtype=torch.float64)
    steps = []
    picked = {impl: keystone_select(x, clusters=4, tau=0.0, impl=impl)[0] for impl in PATHS}
    for b in range(x.shape[0]):
        reference_keystone.steps_used = 0
        ref = reference_keystone(x[b], 4, 0.0)[0]
        assert all(int(idx[b]) == ref for idx in picked.values()), f"row {b}"
        steps.append(reference_keystone.steps_used)
    assert max(steps) >= 5  # the sets really exercise long Lloyd runs


def test_cluster_medoid_is_a_member():
    # Four points on a unit circle (the larger cluster) around an axis holding two points of the other
    # cluster: the point (0, 0, 0.3) is closer in summed distance to the circle than any circle point,
    # yet it is not a member, so it must not be returned.
    ring = [[math.cos(a), math.sin(a), 0.0] for a in (0.0, math.pi / 2, math.pi, 3 * math.pi / 2)]
    x = torch.tensor([[[0.0, 0.0, 0.3], [0.0, 0.0, 0.4], *ring]], dtype=torch.float64)
    idx, info = _check_against_reference(x, clusters=2, tau=0.0)
    assert int(idx[0]) == 2 and int(info["cluster_size"][0]) == 4


def test_empty_clusters_and_duplicates_stay_finite():
    gen = torch.Generator().manual_seed(1)
    x = _multimodal(8, 20, gen)
    x[1] = x[0]  # first two initial centroids coincide: cluster 1 starts empty
    x[2] = x[0]
    x = torch.stack([x, torch.zeros(8, 20, dtype=torch.float64)])  # and a fully degenerate set
    idx, info = _check_against_reference(x)
    assert torch.isfinite(info["spread"][0]) and not torch.isnan(info["spread"]).any()
    assert 0 <= int(idx[1]) < 8


@pytest.mark.parametrize("impl", PATHS)
def test_returns_one_of_its_inputs_and_is_deterministic(impl):
    gen = torch.Generator().manual_seed(2)
    x = torch.stack([_multimodal(8, 450, gen) for _ in range(16)]).float()
    idx, info = keystone_select(x, impl=impl)
    assert idx.dtype == torch.long and idx.shape == (16,)
    assert info["spread"].dtype == torch.float32 and info["guard_fired"].dtype == torch.bool
    assert info["cluster_size"].dtype == torch.long
    assert torch.all((idx >= 0) & (idx < 8))
    chosen = x[torch.arange(16), idx]
    assert torch.all((x == chosen[:, None]).all(-1).any(-1))  # a candidate, never an average
    again, _ = keystone_select(x.clone(), impl=impl)
    assert torch.equal(idx, again)
    one_by_one = torch.cat([keystone_select(x[b : b + 1], impl=impl)[0] for b in range(16)])
    assert torch.equal(idx, one_by_one)  # rows do not influence each other


def test_guard_fires_on_tight_unimodal_set_not_on_bimodal_set():
    gen = torch.Generator().manual_seed(3)
    tight = _unimodal(8, 450, gen)
    center = torch.randn(450, generator=gen, dtype=torch.float64)
    offset = torch.randn(450, generator=gen, dtype=torch.float64)
    noise = 0.05 * torch.randn(8, 450, generator=gen, dtype=torch.float64)
    a, b = center + offset, center - offset
    bimodal = torch.stack([a, b, a, a, b, a, a, b]) + noise  # 5 vs 3
    idx, info = _check_against_reference(torch.stack([tight, bimodal]))
    assert info["guard_fired"].tolist() == [True, False]
    assert int(info["cluster_size"][0]) == 8
    # With C = 4, four centroids start in the two modes and may split the larger one; with C = 2 the
    # modes separate and the larger one must win.
    idx, info = _check_against_reference(bimodal[None], clusters=2)
    assert int(idx[0]) in (0, 2, 3, 5, 6) and int(info["cluster_size"][0]) == 5


def _spread_sweep(k, f, gen):
    """Noise with its first candidate pulled towards the mean (f = 0: onto it, 1: not at all): as f
    grows the spread crosses tau = 0.3 (from ≈ 0.1 to ≈ 0.6 for K = 8 and K = 4)."""
    x = torch.randn(k, 450, generator=gen, dtype=torch.float64)
    x[0] = x.mean(0) + f * (x[0] - x.mean(0))
    return x


def _tie_heavy(k, gen):
    """Sets full of exact ties: candidates repeated from a small pool (medoid, centroid, cluster-size
    and two-member-cluster ties), and a few duplicates inside continuous data."""
    pool = torch.randn(int(torch.randint(1, k, (1,), generator=gen)), 450, generator=gen, dtype=torch.float64)
    repeated = pool[torch.randint(0, len(pool), (k,), generator=gen)]
    mixed = torch.randn(k, 450, generator=gen, dtype=torch.float64)
    mixed[k - 1], mixed[k // 2] = mixed[0], mixed[1]
    return [repeated, mixed]


def _lattice(k, gen):
    """Collinear candidates at integer positions along a vector of sixteen +-1 entries: every distance
    is an integer, so equal summed distances (medoid ties) are equal exactly in any summation order."""
    direction = torch.cat([torch.randint(0, 2, (16,), generator=gen) * 2.0 - 1, torch.zeros(14)])
    return torch.randint(-3, 4, (k,), generator=gen).double()[:, None] * direction.double()


def _assert_same_choice(x, clusters, tau):
    (ia, a), (ib, b) = (keystone_select(x, clusters, tau, impl=impl) for impl in PATHS)
    assert torch.equal(ia, ib), (ia != ib).nonzero().flatten().tolist()
    assert torch.equal(a["guard_fired"], b["guard_fired"])
    assert torch.equal(a["cluster_size"], b["cluster_size"])
    rtol = 1e-4 if x.dtype == torch.float32 else 1e-10
    assert torch.allclose(a["spread"], b["spread"], rtol=rtol, atol=0)
    return a["guard_fired"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("k", "clusters"), [(8, 4), (4, 2)])
def test_numpy_and_torch_paths_pick_the_same_candidate(k, clusters, dtype):
    gen = torch.Generator().manual_seed(100 * k + clusters)
    # Continuous sets from tight (spread far below tau) to well separated (far above), and tie-heavy ones.
    sets = [_spread_sweep(k, f, gen) for f in torch.linspace(0, 1, 160).tolist()]
    sets += [_unimodal(k, 450, gen) for _ in range(40)]
    sets += [_multimodal(k, 450, gen, modes=m) for m in (1, 2, 3) for _ in range(40)]
    sets += [torch.randn(k, 450, generator=gen, dtype=torch.float64) for _ in range(60)]
    sets += [t for _ in range(150) for t in _tie_heavy(k, gen)]
    x = torch.stack(sets).to(dtype)
    guard = _assert_same_choice(x, clusters, 0.3)
    assert 0.1 < guard.float().mean() < 0.9  # both sides of tau, in numbers
    _assert_same_choice(x, clusters, 0.0)  # the k-means path on every set
    # Medoid ties with integer distances. (The k-means on these sets can meet a point exactly midway
    # between two centroids whose weights, like 1/3, round: such a tie breaks by rounding, which
    # differs between any two implementations, so there the guard is made to fire.)
    lattice = torch.stack([_lattice(k, gen) for _ in range(200)]).to(dtype)
    assert _assert_same_choice(lattice, clusters, 1e9).all()
    totals = torch.cdist(lattice, lattice).sum(-1)
    assert ((totals == totals.min(-1, keepdim=True).values).sum(-1) > 1).any()  # ties were there


def test_auto_takes_numpy_for_cpu_floats_and_torch_otherwise(monkeypatch):
    from lekiwi_drift.policy import keystone

    x = torch.stack([_multimodal(8, 30, torch.Generator().manual_seed(5)) for _ in range(3)]).float()
    expected = keystone_select(x, impl="torch")[0]
    monkeypatch.setattr(keystone, "_select_torch", None)  # any call to the torch path would fail
    assert torch.equal(keystone_select(x)[0], expected)
    assert torch.equal(keystone_select(x.double())[0], expected)
    monkeypatch.undo()
    monkeypatch.setattr(keystone, "_select_numpy", None)  # and now any call to the NumPy path
    assert keystone_select(x.bfloat16())[0].shape == (3,)
    with pytest.raises(ValueError):
        keystone_select(x.bfloat16(), impl="numpy")
    with pytest.raises(ValueError):
        keystone_select(x, impl="fast")


def test_numpy_path_indices_work_with_autograd_and_inference_mode():
    x = torch.stack([_multimodal(8, 30, torch.Generator().manual_seed(6)) for _ in range(4)]).requires_grad_()
    idx, _ = keystone_select(x)
    x[torch.arange(4), idx].sum().backward()  # an index usable in a grad-tracked gather
    assert x.grad.abs().sum() > 0
    with torch.inference_mode():
        assert torch.equal(keystone_select(x.detach())[0], idx)


def test_flatten_real_drops_padded_dims():
    chunks = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).view(2, 3, 4, 6)
    flat = flatten_real(chunks, 5)
    assert flat.shape == (2, 3, 20)
    assert torch.equal(flat.view(2, 3, 4, 5), chunks[..., :5])


def test_rejects_bad_shape():
    with pytest.raises(ValueError):
        keystone_select(torch.zeros(8, 10))
    with pytest.raises(ValueError):
        keystone_select(torch.zeros(2, 1, 10))  # K = 1: nothing to select among
