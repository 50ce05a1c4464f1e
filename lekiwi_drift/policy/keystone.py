"""KeyStone (Dai et al. 2026): pick one of K candidate chunks by geometric self-consistency.

Per docs/design.md#keystone, for each observation's candidates x_1..x_K (flattened over the real action dims):
1. pairwise L2 distances d_ij; global medoid m = argmin_i sum_j d_ij;
2. spread = ||mean(x) - x_m|| / (median_{i<j} d_ij + 1e-8); if spread < tau return x_m;
3. else k-means with C clusters initialised from the first C candidates, at most 10 Lloyd steps (stop
   when assignments are stable), one final assignment to the final centroids, and return the medoid of
   the largest cluster.

Decisions the paper's description leaves open, fixed here and stated in docs/design.md#keystone
(tests/test_keystone.py holds a loop reference that follows the same rules):
- median of an even number of distances is the *lower* of the two middle values (torch.median);
- every tie (medoid, nearest centroid, largest cluster, medoid inside the cluster) goes to the lowest
  index; the cluster medoid minimises the summed distance to the members of its own cluster;
- an empty cluster keeps its previous centroid (never a 0/0 NaN);
- "stop when stable": a batch row whose assignments repeat those of its previous step is frozen (its
  centroids are no longer updated). The torch path runs all rows for the same fixed number of steps,
  so there is no data-dependent exit and no host sync; freezing changes nothing numerically for that
  row because a Lloyd update from unchanged assignments reproduces the same centroids. The NumPy path,
  on the host anyway, stops once every row is frozen.
- C = min(clusters, K).

Two implementations of exactly these rules, chosen by `impl`:
- "torch": batched over B, for any device. Both the guard path and the k-means path are computed and
  the result is chosen with torch.where, with no host sync, so a GPU caller can queue it. Centroids are
  held as weights over the K candidates (centroid = W @ x), so each Lloyd step works on K x K
  squared-distance entries instead of F-dimensional vectors.
- "numpy": the same steps in NumPy, for CPU float32/float64 tensors. At K = 8 the torch path's time is
  dispatch: 144 ATen ops per call, a few µs each, whatever B is, so at B = 1 it cost about twice a plain
  per-observation loop. A NumPy call costs about 1 µs, and on the host the path can skip what the torch
  path computes only to avoid a sync: the k-means of rows whose guard fired, and the Lloyd steps after
  every row's assignments are stable. It is single-threaded, so it never waits on an OpenMP worker that
  another process has descheduled (on the loaded 2-core box the torch path's B = 16 call took ≈ 10 ms
  with 2 threads, ≈ 2 ms with 1).
"auto" (the default) takes "numpy" wherever it applies and "torch" elsewhere; `lekiwi-drift bench
keystone` times both against a plain loop (docs/benchmarks.md). They pick the same candidate; only
rounding differs (the NumPy path sums in other orders), so values that are equal only in exact
arithmetic (e.g. a point midway between two centroids whose weights, like 1/5, round) may break
differently, while exact ties (duplicate candidates, equal cluster sizes, two-member clusters, integer
distances) go to the lowest index in both. tests/test_keystone.py checks both paths against the loop
reference and against each other.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

MAX_LLOYD_STEPS = 10
IMPLS = ("auto", "numpy", "torch")


def flatten_real(chunks: torch.Tensor, action_dim: int) -> torch.Tensor:
    """[B,K,T,Dmax] padded candidate chunks -> [B,K,T*action_dim] over the real action dims only."""
    b, k = chunks.shape[:2]
    return chunks[..., :action_dim].reshape(b, k, -1)


def keystone_select(
    candidates: torch.Tensor, clusters: int = 4, tau: float = 0.3, impl: str = "auto"
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Choose one candidate per row of candidates [B,K,F], K >= 2.

    Returns indices [B] (long, into K) and info: spread [B], guard_fired [B] bool (spread < tau: the
    global medoid was returned) and cluster_size [B] (size of the winning k-means cluster; K where the
    guard fired, since the whole set is then the winner). All on the candidates' device.
    """
    if candidates.dim() != 3 or candidates.shape[1] < 2:
        raise ValueError(f"candidates must be [B,K,F] with K >= 2, got {tuple(candidates.shape)}")
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    numpy_ok = candidates.device.type == "cpu" and candidates.dtype in (torch.float32, torch.float64)
    if impl == "numpy" and not numpy_ok:
        raise ValueError(
            f"impl='numpy' needs a CPU float32/float64 tensor, got {candidates.dtype} on {candidates.device}"
        )
    if impl == "numpy" or (impl == "auto" and numpy_ok):
        indices, spread, guard, size = (
            torch.from_numpy(a)
            for a in _select_numpy(candidates.detach().numpy(), min(clusters, candidates.shape[1]), tau)
        )
    else:
        indices, spread, guard, size = _select_torch(candidates, clusters, tau)
    return indices, {"spread": spread, "guard_fired": guard, "cluster_size": size}


def _select_torch(candidates: torch.Tensor, clusters: int, tau: float) -> tuple[torch.Tensor, ...]:
    """The batched torch path: (indices, spread, guard, size), see the module docstring."""
    b, k, _ = candidates.shape
    n_clusters = min(clusters, k)
    n_pairs = k * (k - 1) // 2
    # inference_mode trims per-op bookkeeping (≈ 10 % at K = 8, where per-op cost is the cost); the
    # results are cloned out of it below unless the caller is in inference mode too.
    with torch.inference_mode():
        x = candidates.detach()
        # Direct differences (not the ||a||^2 - 2ab + ||b||^2 expansion) so close candidates keep
        # accurate distances and the diagonal is exactly zero.
        # (torch.cdist's direct mode is several times slower at these sizes.)
        dist = torch.linalg.vector_norm(x[:, :, None] - x[:, None], dim=-1)  # [B,K,K]
        medoid = dist.sum(-1).argmin(-1)  # [B]; ties -> lowest index
        # Lower median of the n_pairs distances d_ij, i<j, read off the full matrix: it holds the K zero
        # self-distances (the smallest values) and every pair twice, so the pair list's element number
        # (n_pairs-1)//2 sits at 0-based position K + 2*((n_pairs-1)//2).
        median = dist.reshape(b, k * k).kthvalue(k + 2 * ((n_pairs - 1) // 2) + 1, dim=-1).values
        # mean(x) - x_m as the mean of x_i - x_m: exactly zero when the K candidates are identical, so
        # the guard fires (spread 0), where mean(x) - x_m (or centering x first) is not: the mean of K
        # equal values rounds, and / (0 + 1e-8) made that ≈ 100.
        x_m = x.gather(1, medoid.view(b, 1, 1).expand(b, 1, x.shape[2]))
        spread = torch.linalg.vector_norm((x - x_m).mean(1), dim=-1) / (median + 1e-8)
        guard = spread < tau

        winner, size = _kmeans_winner(dist, n_clusters)
        indices = torch.where(guard, medoid, winner)
        size = torch.where(guard, k, size)
    out = (indices, spread, guard, size)
    if not torch.is_inference_mode_enabled():
        # Inference tensors cannot be saved for backward (e.g. as the index of a grad-tracked gather).
        out = tuple(t.clone() for t in out)
    return out


def _scores(w: torch.Tensor, dsq: torch.Tensor) -> torch.Tensor:
    """||x_k - c||^2 up to nothing, for centroids c = sum_m w_cm x_m with rows of w [B,C,K] summing to 1.

    ||x_k - c||^2 = sum_m w_m ||x_k - x_m||^2 - 1/2 sum_mn w_m w_n ||x_m - x_n||^2: only the squared
    pairwise distances dsq [B,K,K] are needed, never the F-dimensional centroids.
    """
    cross = torch.bmm(w, dsq)  # [B,C,K]
    return cross.sub_((cross * w).sum(-1, keepdim=True), alpha=0.5)


def _kmeans_winner(dist: torch.Tensor, n_clusters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """k-means over the candidates; returns (medoid index of the largest cluster [B], its size [B]).

    Centroids are weights w [B,C,K] over the candidates: one-hot rows for the first C candidates at
    the start, member / count after each update. An update is therefore a pure function of the
    assignments (an empty cluster keeps its previous weights), so a row whose assignments repeat is at
    a fixed point: its update reproduces its weights bit for bit and every later assignment repeats.
    Running all MAX_LLOYD_STEPS unconditionally is thus exactly "stop when stable": the row is frozen
    from then on, with no data-dependent exit and no host sync. tests/test_keystone.py checks this
    against a loop that breaks explicitly.
    """
    b, k, _ = dist.shape
    dsq = dist.square()
    labels = torch.arange(n_clusters, device=dist.device)[None, :, None]  # [1,C,1]
    # One-hot memberships are written straight into a float buffer: building them as bools and
    # converting (or summing/dividing bools) costs extra copies, and at K = 8 per-op cost is the cost.
    member = dist.new_empty(b, n_clusters, k)
    w = torch.eye(n_clusters, k, dtype=dist.dtype, device=dist.device)  # the first C candidates
    # The first assignment is to the first C candidates themselves: a slice of the distance matrix.
    assign = dsq[:, :n_clusters].argmin(1, keepdim=True)  # [B,1,K]; ties -> lowest cluster index
    for step in range(MAX_LLOYD_STEPS):
        if step > 0:
            assign = _scores(w, dsq).argmin(1, keepdim=True)
        torch.eq(assign, labels, out=member)  # [B,C,K]
        count = member.sum(-1, keepdim=True)  # [B,C,1]
        # An empty cluster's row is 0/0 = NaN here but is never selected: it keeps its weights.
        w = torch.where(count == 0, w, member / count)
    assign = _scores(w, dsq).argmin(1, keepdim=True)  # the final assignment
    torch.eq(assign, labels, out=member)
    size, largest = member.sum(-1).max(-1)  # [B]; max returns the first maximum on ties
    in_largest = member.gather(1, largest.view(b, 1, 1).expand(b, 1, k))  # [B,1,K] 0/1
    # Medoid inside the cluster: summed distance to its members (dist is symmetric); non-members can
    # never win.
    cost = torch.where(in_largest > 0, torch.bmm(in_largest, dist), torch.inf)
    return cost.argmin(-1).squeeze(1), size.long()


@functools.cache
def _layout(k: int, n_clusters: int, dtype: np.dtype) -> tuple[np.ndarray, ...]:
    """Arrays every NumPy call with this K, C and dtype reuses: the pairs i<j, the one-hot rows of the
    C labels [C,C], and the initial centroid weights (the first C candidates) [C,K]."""
    first, second = np.triu_indices(k, 1)
    return first, second, np.eye(n_clusters, dtype=dtype), np.eye(n_clusters, k, dtype=dtype)


def _select_numpy(x: np.ndarray, n_clusters: int, tau: float) -> tuple[np.ndarray, ...]:
    """The NumPy path on x [B,K,F] (float32/float64, computed in that dtype): (indices, spread, guard,
    size) as arrays, by the same steps and tie rules as the torch path. Every line is one NumPy call or
    a few: at K = 8 the call count, not the arithmetic, is the cost."""
    b, k, _ = x.shape
    first, second, onehot, init = _layout(k, n_clusters, x.dtype)
    # Direct differences, each pair once (the torch path takes all K^2 to stay in one op).
    pair = x[:, first] - x[:, second]  # [B,P,F]
    pair_dist = np.sqrt(np.vecdot(pair, pair))
    dist = np.zeros((b, k, k), x.dtype)
    dist[:, first, second] = pair_dist
    dist[:, second, first] = pair_dist  # exactly symmetric, zero diagonal
    medoid = dist.sum(2).argmin(1)  # ties -> lowest index
    mid = (first.size - 1) // 2  # the lower median of an even count, as torch.kthvalue gives it
    median = np.partition(pair_dist, mid, axis=1)[:, mid]
    # mean(x) - x_m as the mean of x_i - x_m, as in the torch path (identical candidates: exactly 0).
    off = np.add.reduce(x - x[np.arange(b), medoid][:, None], 1) / k
    # `+ 1e-8` and `< tau` stay in x's dtype (NumPy 2 casts Python floats to it, as torch does).
    spread = np.sqrt(np.vecdot(off, off)) / (median + 1e-8)
    guard = spread < tau
    size = np.full(b, k)
    if np.count_nonzero(guard) < b:  # k-means only for the rows whose guard did not fire
        rows = np.flatnonzero(~guard)
        medoid[rows], size[rows] = _kmeans_winner_numpy(dist if rows.size == b else dist[rows], onehot, init)
    return medoid, spread, guard, size


def _kmeans_winner_numpy(dist: np.ndarray, onehot: np.ndarray, init: np.ndarray) -> tuple[np.ndarray, ...]:
    """_kmeans_winner's steps on dist [R,K,K], with its weight-space centroids; stops as soon as every
    row's assignments repeat (the torch path runs all steps, which changes nothing after that)."""
    r = dist.shape[0]
    dsq = dist * dist
    w = init[None].repeat(r, 0)  # [R,C,K]
    assign = dsq[:, : len(onehot)].argmin(1)  # [R,K]; ties -> lowest cluster index
    stable = False
    for _ in range(MAX_LLOYD_STEPS):
        member = onehot[assign]  # [R,K,C] 0/1
        count = np.add.reduce(member, 1)[:, :, None]  # [R,C,1]
        # In place, and only where the cluster has members: an empty cluster keeps its weights.
        np.divide(member.transpose(0, 2, 1), count, out=w, where=count > 0)
        cross = w @ dsq  # [R,C,K]; the score is ||x_k - c||^2, see _scores
        new = (cross - 0.5 * np.einsum("rck,rck->rc", cross, w)[:, :, None]).argmin(1)
        stable = new.tobytes() == assign.tobytes()  # one bytes compare beats two NumPy calls
        assign = new
        if stable:
            break  # at a fixed point: the final assignment repeats this one, and so do member and count
    if not stable:  # `assign` is the final assignment to the last centroids; count its members
        member = onehot[assign]
        count = np.add.reduce(member, 1)[:, :, None]
    largest = count[:, :, 0].argmax(1)  # first maximum on ties
    rows = np.arange(r)
    in_largest = member[rows, :, largest]  # [R,K] 0/1
    cost = np.where(in_largest > 0, np.vecdot(in_largest[:, :, None], dist, axis=1), np.inf)
    return cost.argmin(1), count[rows, largest, 0].astype(np.int64)
