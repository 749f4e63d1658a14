"""Asterism (triangle) matching of two star lists and the affine transform between them.

Pure array maths, no Image or Block. The approach follows astroalign's triangle invariants
(Beroiz et al. 2020) with the caps twirl lacked (prose issue #160): only the ``n`` brightest
well-spread stars of each list form triangles (each star with its ``k - 1`` nearest neighbours),
so the cost is bounded whatever the number of detections. Each triangle is described by two side
ratios, invariant to translation, rotation, flip and scale. Triangle pairs with close invariants
propose affine transforms that must be near-similarities; each proposal votes by counting stars
it maps within ``tolerance`` of a frame star; the winner is refined by least squares on every
cross-matched star with outlier rejection. A solution is only returned when enough stars agree
with small residuals, otherwise :class:`MatchError` is raised -- never a wrong transform.

Convention: a 3x3 matrix ``T`` maps reference ``(x, y, 1)`` column vectors to frame coordinates.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from .neighbors import Neighbors
from .stats import median

__all__ = ["MatchError", "Match", "StarSet", "match", "apply_transform", "fit_affine",
           "select_stars", "triangles", "transform_summary"]


class MatchError(ValueError):
    """The two star lists could not be matched reliably."""


@dataclass(frozen=True)
class Match:
    """A solved match: ``transform`` (3x3, reference -> frame), ``pairs`` (m, 2) indices
    (reference, frame) into the full input lists, ``rms`` residual (px) of the fit on the pairs,
    and ``votes``, the number of capped stars the asterism hypothesis explained."""

    transform: np.ndarray
    pairs: np.ndarray
    rms: float
    votes: int

    @property
    def n_matched(self) -> int:
        return len(self.pairs)


def apply_transform(t: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Map (n, 2) points through the 3x3 matrix ``t``."""
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    return xy @ t[:2, :2].T + t[:2, 2]


def fit_affine(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares affine 3x3 matrix mapping ``src`` (n>=3, 2) onto ``dst`` (centred normal
    equations, solved in closed form: well conditioned and much cheaper than a general lstsq
    for these tiny systems). Raises ``np.linalg.LinAlgError`` for collinear points."""
    src, dst = np.asarray(src, float), np.asarray(dst, float)
    n = len(src)
    cs, cd = src.sum(axis=0) / n, dst.sum(axis=0) / n
    a, b = src - cs, dst - cd
    sxx, sxy, syy = a[:, 0] @ a[:, 0], a[:, 0] @ a[:, 1], a[:, 1] @ a[:, 1]
    det = sxx * syy - sxy * sxy
    if not det > 1e-12 * max(sxx * syy, 1e-300):
        raise np.linalg.LinAlgError("collinear points: the affine fit is singular")
    atb = a.T @ b                                   # (2, 2): rows x/y of src, columns of dst
    inv = np.array([[syy, -sxy], [-sxy, sxx]]) / det
    lin = (inv @ atb).T
    t = np.eye(3)
    t[:2, :2] = lin
    t[:2, 2] = cd - lin @ cs
    return t


def transform_summary(t: np.ndarray) -> dict:
    """Scale, rotation (deg), anisotropy and flip of the linear part of ``t``."""
    lin = t[:2, :2]
    det = float(np.linalg.det(lin))
    s = np.linalg.svd(lin, compute_uv=False)
    flip = det < 0
    m = lin @ np.diag([-1.0, 1.0]) if flip else lin
    return {"scale": float(np.sqrt(abs(det))), "anisotropy": float(s[0] / s[1]) if s[1] > 0 else np.inf,
            "rotation": float(np.degrees(np.arctan2(m[1, 0] - m[0, 1], m[0, 0] + m[1, 1]))), "flip": bool(flip)}


def select_stars(xy: np.ndarray, n: int, min_distance: float) -> np.ndarray:
    """Indices of at most ``n`` stars, taken in input (brightness) order, none closer than
    ``min_distance`` px to a brighter kept one (drops blends and tiny triangles)."""
    xy = np.asarray(xy, float)
    if len(xy) == 0:
        return np.zeros(0, int)
    close = Neighbors(xy).query_pairs(min_distance, output_type="ndarray")
    neighbours: dict[int, list[int]] = {}
    for i, j in close:
        neighbours.setdefault(int(i), []).append(int(j))
        neighbours.setdefault(int(j), []).append(int(i))
    removed = np.zeros(len(xy), bool)
    keep = []
    for i in range(len(xy)):
        if removed[i]:
            continue
        keep.append(i)
        if len(keep) >= n:
            break
        removed[neighbours.get(i, [])] = True
    return np.asarray(keep, int)


def triangles(xy: np.ndarray, k: int = 6, ambiguity: float = 0.01):
    """Triangles of each star with its ``k - 1`` nearest neighbours.

    Returns ``(vertices (m, 3), invariants (m, 2))``: vertices ordered by the length of the
    opposite side (shortest first) so corresponding triangles list corresponding stars; the
    invariants are (shortest / longest, middle / longest) side ratios. Degenerate (flat) and
    ambiguous triangles (two sides within ``ambiguity`` of each other) are dropped.
    """
    xy = np.asarray(xy, float)
    n = len(xy)
    if n < 3:
        return np.zeros((0, 3), int), np.zeros((0, 2))
    k = min(k, n)
    _, nn = Neighbors(xy).query(xy, k=k)
    combos = np.array(list(combinations(range(k), 3)))
    tri = np.sort(nn[:, combos].reshape(-1, 3), axis=1)
    key = (tri[:, 0] * n + tri[:, 1]) * n + tri[:, 2]
    tri = tri[np.unique(key, return_index=True)[1]]
    p = xy[tri]
    opp = np.stack([np.hypot(*(p[:, 1] - p[:, 2]).T), np.hypot(*(p[:, 2] - p[:, 0]).T),
                    np.hypot(*(p[:, 0] - p[:, 1]).T)], axis=1)
    order = np.argsort(opp, axis=1)
    tri = np.take_along_axis(tri, order, 1)
    side = np.take_along_axis(opp, order, 1)
    longest = side[:, 2]
    good = ((side[:, 0] + side[:, 1] - longest) > 0.02 * longest) \
        & ((side[:, 1] - side[:, 0]) > ambiguity * longest) & ((longest - side[:, 1]) > ambiguity * longest)
    tri, side = tri[good], side[good]
    return tri, side[:, :2] / side[:, 2:3]


class StarSet:
    """A star list prepared for matching: the capped well-spread subset, its triangles and trees.

    Build it once for the reference and pass it to :func:`match` for every frame.
    """

    def __init__(self, xy, *, n: int = 30, min_distance: float = 10.0, k: int = 6):
        self.xy = np.asarray(xy, float).reshape(-1, 2)
        finite = np.flatnonzero(np.isfinite(self.xy).all(axis=1))
        self.subset = finite[select_stars(self.xy[finite], n, min_distance)]
        self.sub_xy = self.xy[self.subset]
        self.tri, self.inv = triangles(self.sub_xy, k)
        self.inv_tree = Neighbors(self.inv) if len(self.inv) else None
        self.sub_tree = Neighbors(self.sub_xy) if len(self.sub_xy) else None
        self._finite = finite
        self.tree = Neighbors(self.xy[finite]) if len(finite) else None

    def __len__(self) -> int:
        return len(self.xy)


def _hypotheses(ref: StarSet, frame: StarSet, eps: float):
    """Candidate (ref triangle, frame triangle) index pairs with invariants within ``eps``,
    closest first."""
    if ref.inv_tree is None or not len(frame.inv):
        return np.zeros(0, int), np.zeros(0, int)
    kq = min(4, len(ref.inv))
    d, i = ref.inv_tree.query(frame.inv, k=kq, distance_upper_bound=eps)
    d, i = d.reshape(len(frame.inv), kq), i.reshape(len(frame.inv), kq)
    ok = np.isfinite(d)
    j = np.nonzero(ok)[0]
    order = np.argsort(d[ok], kind="stable")
    return i[ok][order], j[order]


def _singular_values(lin: np.ndarray):
    """Closed-form singular values (largest, smallest) of a stack of 2x2 matrices."""
    a, b, c, d = lin[:, 0, 0], lin[:, 0, 1], lin[:, 1, 0], lin[:, 1, 1]
    q = np.hypot((a + d) / 2, (c - b) / 2)
    r = np.hypot((a - d) / 2, (c + b) / 2)
    return q + r, np.abs(q - r)


def _triangle_transforms(ref: StarSet, frame: StarSet, ri, fj, max_scale, max_anisotropy, allow_flip):
    """Exact affine maps of each ref triangle onto its frame triangle, keeping near-similarities."""
    src = ref.sub_xy[ref.tri[ri]]
    dst = frame.sub_xy[frame.tri[fj]]
    # translate to the first vertex: the 2x2 linear part then solves from the two edge vectors
    es, ed = src[:, 1:] - src[:, :1], dst[:, 1:] - dst[:, :1]
    det = es[:, 0, 0] * es[:, 1, 1] - es[:, 0, 1] * es[:, 1, 0]
    inv = np.stack([np.stack([es[:, 1, 1], -es[:, 0, 1]], -1), np.stack([-es[:, 1, 0], es[:, 0, 0]], -1)], 1)
    inv /= det[:, None, None]
    lin = np.transpose(np.matmul(inv, ed), (0, 2, 1))
    s1, s2 = _singular_values(lin)
    scale = np.sqrt(s1 * s2)
    ok = (s1 < max_anisotropy * s2) & (scale < max_scale) & (scale > 1.0 / max_scale)
    if not allow_flip:
        ok &= (lin[:, 0, 0] * lin[:, 1, 1] - lin[:, 0, 1] * lin[:, 1, 0]) > 0
    t = np.zeros((int(ok.sum()), 3, 3))
    t[:, :2, :2] = lin[ok]
    t[:, :2, 2] = dst[ok, 0] - np.einsum("hij,hj->hi", lin[ok], src[ok, 0])
    t[:, 2, 2] = 1.0
    return t


def _vote(ref: StarSet, frame: StarSet, ts: np.ndarray, tolerance: float):
    """Number of capped reference stars each transform maps within ``tolerance`` of a frame star."""
    mapped = np.matmul(ref.sub_xy[None], np.transpose(ts[:, :2, :2], (0, 2, 1))) + ts[:, None, :2, 2]
    d, _ = frame.sub_tree.query(mapped.reshape(-1, 2), distance_upper_bound=tolerance)
    return np.isfinite(d).reshape(len(ts), -1).sum(axis=1)


def _best_hypothesis(ref: StarSet, frame: StarSet, *, eps, tolerance, enough, max_scale, max_anisotropy,
                     allow_flip):
    """(transform, votes) of the best triangle hypothesis; hypotheses are tried closest-invariants
    first in growing batches, stopping once one explains ``enough`` stars."""
    ri, fj = _hypotheses(ref, frame, eps)
    best_t, best_v, start, size = None, 0, 0, 16
    while start < len(ri):
        ts = _triangle_transforms(ref, frame, ri[start:start + size], fj[start:start + size],
                                  max_scale, max_anisotropy, allow_flip)
        start, size = start + size, size * 4
        if not len(ts):
            continue
        votes = _vote(ref, frame, ts, tolerance)
        i = int(np.argmax(votes))
        if votes[i] > best_v:
            best_t, best_v = ts[i], int(votes[i])
        if best_v >= enough:
            break
    return best_t, best_v


def _pairs(t, ref: StarSet, frame: StarSet, tolerance: float):
    """One-to-one nearest-neighbour pairs (ref index, frame index, distance) under ``t``."""
    ridx = ref._finite
    mapped = apply_transform(t, ref.xy[ridx])
    d, j = frame.tree.query(mapped, distance_upper_bound=tolerance)
    ok = np.isfinite(d)
    r, j, d = ridx[ok], frame._finite[j[ok]], d[ok]
    order = np.argsort(d, kind="stable")
    r, j, d = r[order], j[order], d[order]
    _, first = np.unique(j, return_index=True)
    first = np.sort(first)
    return r[first], j[first], d[first]


def _refine(t, ref: StarSet, frame: StarSet, tolerance: float, iterations: int = 6):
    """Least-squares affine on all cross-matched stars, with 3-sigma (MAD) outlier rejection."""
    tol = tolerance
    prev = None
    pairs = np.zeros((0, 2), int)
    rms = np.inf
    for _ in range(iterations):
        r, j, _ = _pairs(t, ref, frame, tol)
        if len(r) < 3:
            break
        keep = np.ones(len(r), bool)
        for _ in range(3):
            t_new = fit_affine(ref.xy[r[keep]], frame.xy[j[keep]])
            res = np.hypot(*(apply_transform(t_new, ref.xy[r]) - frame.xy[j]).T)
            sigma = max(1.4826 * float(median(res[keep])), 0.02)
            new_keep = res <= max(3.0 * sigma, 0.1)
            if new_keep.sum() < 3 or np.array_equal(new_keep, keep):
                break
            keep = new_keep
        t = t_new
        pairs = np.column_stack([r[keep], j[keep]])
        rms = float(np.sqrt(np.mean(res[keep] ** 2)))
        tol = min(tolerance, max(5.0 * rms, 0.5))
        key = pairs.tobytes()
        if key == prev:
            break
        prev = key
    return t, pairs, rms


def match(ref, xy, *, n: int = 30, tolerance: float = 2.0, min_match: int = 6, max_rms: float | None = None,
          max_scale: float = 1.1, max_anisotropy: float = 1.08, allow_flip: bool = True, eps: float = 0.01,
          k: int = 6, min_distance: float | None = None, retries: int = 1) -> Match:
    """Transform from the reference star list to ``xy`` (both brightest first).

    ``ref`` is a :class:`StarSet` (reuse it across frames) or an (n, 2) array. ``n`` caps the
    stars used for the asterisms; ``tolerance`` (px) is the match radius; a solution needs at
    least ``min_match`` voting stars and matched pairs with an rms residual under ``max_rms``
    (default ``tolerance / 2``). When the first attempt fails and more stars are available, it is
    retried ``retries`` times with twice as many. Raises :class:`MatchError` otherwise.
    """
    min_distance = 5.0 * tolerance if min_distance is None else min_distance
    max_rms = tolerance / 2.0 if max_rms is None else max_rms
    xy = np.asarray(xy, float).reshape(-1, 2)
    ref_xy = ref.xy if isinstance(ref, StarSet) else np.asarray(ref, float).reshape(-1, 2)
    why = "too few stars"
    for attempt in range(retries + 1):
        m = n * 2 ** attempt
        if attempt and m // 2 >= max(len(xy), len(ref_xy)):
            break
        rset = ref if (isinstance(ref, StarSet) and attempt == 0) else StarSet(ref_xy, n=m,
                                                                              min_distance=min_distance, k=k)
        fset = StarSet(xy, n=m, min_distance=min_distance, k=k)
        try:
            return _solve(rset, fset, tolerance=tolerance, min_match=min_match, max_rms=max_rms,
                          max_scale=max_scale, max_anisotropy=max_anisotropy, allow_flip=allow_flip, eps=eps)
        except MatchError as e:
            why = str(e)
    raise MatchError(why)


def _solve(ref: StarSet, frame: StarSet, *, tolerance, min_match, max_rms, max_scale, max_anisotropy,
           allow_flip, eps) -> Match:
    """One matching attempt on prepared star sets (see :func:`match`)."""
    if len(ref.sub_xy) < 3 or len(frame.sub_xy) < 3:
        raise MatchError(f"too few stars to match ({len(ref.sub_xy)} reference, {len(frame.sub_xy)} frame)")
    enough = max(min_match, int(0.6 * min(len(ref.sub_xy), len(frame.sub_xy))))
    t0, votes = _best_hypothesis(ref, frame, eps=eps, tolerance=tolerance, enough=enough, max_scale=max_scale,
                                 max_anisotropy=max_anisotropy, allow_flip=allow_flip)
    if t0 is None:
        raise MatchError("no similar asterisms between the reference and the frame")
    if votes < min_match:
        raise MatchError(f"best asterism explains only {votes} stars (< {min_match})")
    try:
        t, pairs, rms = _refine(t0, ref, frame, tolerance)
    except np.linalg.LinAlgError as e:
        raise MatchError(f"degenerate star configuration ({e})") from None
    info = transform_summary(t)
    if len(pairs) < min_match:
        raise MatchError(f"only {len(pairs)} stars cross-matched (< {min_match})")
    if not rms <= max_rms:
        raise MatchError(f"match residual {rms:.2f} px exceeds {max_rms:.2f} px")
    if not (1 / max_scale < info["scale"] < max_scale and info["anisotropy"] < max_anisotropy):
        raise MatchError(f"implausible transform (scale {info['scale']:.3f}, anisotropy {info['anisotropy']:.3f})")
    return Match(transform=t, pairs=pairs, rms=rms, votes=votes)
