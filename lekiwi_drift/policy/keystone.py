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
  centroids are no longer updated). All rows run the same fixed number of steps, so there is no
  data-dependent exit and no host sync; freezing changes nothing numerically for that row because a
  Lloyd update from unchanged assignments reproduces the same centroids.
- C = min(clusters, K).

Everything is batched over B; both the guard path and the k-means path are computed and the result is
chosen with torch.where. Centroids are held as weights over the K candidates (centroid = W @ x), so
each Lloyd step works on K x K Gram entries instead of F-dimensional vectors.
"""

from __future__ import annotations

import torch

MAX_LLOYD_STEPS = 10


def flatten_real(chunks: torch.Tensor, action_dim: int) -> torch.Tensor:
    """[B,K,T,Dmax] padded candidate chunks -> [B,K,T*action_dim] over the real action dims only."""
    b, k = chunks.shape[:2]
    return chunks[..., :action_dim].reshape(b, k, -1)


def keystone_select(
    candidates: torch.Tensor, clusters: int = 4, tau: float = 0.3
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Choose one candidate per row of candidates [B,K,F].

    Returns indices [B] (long, into K) and info: spread [B], guard_fired [B] bool (spread < tau: the
    global medoid was returned) and cluster_size [B] (size of the winning k-means cluster; K where the
    guard fired, since the whole set is then the winner).
    """
    if candidates.dim() != 3:
        raise ValueError(f"candidates must be [B,K,F], got {tuple(candidates.shape)}")
    b, k, _ = candidates.shape
    n_clusters = min(clusters, k)
    n_pairs = k * (k - 1) // 2
    # inference_mode trims per-op bookkeeping (≈ 10 % at K = 8, where per-op cost is the cost); the
    # results are cloned out of it below unless the caller is in inference mode too.
    with torch.inference_mode():
        # Centering changes no distance; it makes ||mean(x) - x_m|| simply ||x_m||.
        x = candidates.detach()
        x = x - x.mean(1, keepdim=True)
        # Direct differences (not the ||a||^2 - 2ab + ||b||^2 expansion) so close candidates keep
        # accurate distances and the diagonal is exactly zero.
        # (torch.cdist's direct mode is several times slower at these sizes.)
        dist = torch.linalg.vector_norm(x[:, :, None] - x[:, None], dim=-1)  # [B,K,K]
        medoid = dist.sum(-1).argmin(-1)  # [B]; ties -> lowest index
        # Lower median of the n_pairs distances d_ij, i<j, read off the full matrix: it holds the K zero
        # self-distances (the smallest values) and every pair twice, so the pair list's element number
        # (n_pairs-1)//2 sits at 0-based position K + 2*((n_pairs-1)//2).
        median = dist.reshape(b, k * k).kthvalue(k + 2 * ((n_pairs - 1) // 2) + 1, dim=-1).values
        norm_m = torch.linalg.vector_norm(x, dim=-1).gather(1, medoid[:, None]).squeeze(1)
        spread = norm_m / (median + 1e-8)
        guard = spread < tau

        winner, size = _kmeans_winner(dist, n_clusters)
        indices = torch.where(guard, medoid, winner)
        size = torch.where(guard, k, size)
    out = (indices, spread, guard, size)
    if not torch.is_inference_mode_enabled():
        # Inference tensors cannot be saved for backward (e.g. as the index of a grad-tracked gather).
        out = tuple(t.clone() for t in out)
    indices, spread, guard, size = out
    return indices, {"spread": spread, "guard_fired": guard, "cluster_size": size}


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
