"""Differential photometry maths: comparison weights, ensemble division, aperture choice, binning.

Pure numpy functions on arrays shaped ``(n_apertures, n_stars, n_frames)``; ``reduce.fluxes.Fluxes``
calls them. The weighting follows Broeg, Fernández & Neuhäuser (2005, AN 326, 134): each comparison
star is weighted by the inverse variance of its own light curve divided by the weighted ensemble of
the *other* comparison stars, iterated to convergence; stars far noisier than a fitted noise model
(variables, blends) are dropped.
"""
from __future__ import annotations

import numpy as np

from ..image import SATURATION_FRACTION

__all__ = [
    "nanmedian", "robust_std", "p2p_scatter", "binned_scatter", "usable_frames", "select_comparisons",
    "weights_broeg", "differential", "frame_median", "best_aperture", "seeing_trend", "bin_edges", "binned",
]

MAD_TO_SIGMA = 1.482602218505602


def nanmedian(x, axis=-1, keepdims=False):
    """Median ignoring NaNs (NaN where a slice is all-NaN), without warnings.

    Sort-based: several times faster than ``np.nanmedian`` on long axes with a few NaNs
    (numpy then falls back to a Python loop over slices).
    """
    x = np.moveaxis(np.asarray(x, dtype=float), axis, -1)
    nan = np.isnan(x)
    if not nan.any():
        out = np.median(x, axis=-1, keepdims=True)
    else:
        srt = np.sort(x, axis=-1)  # NaNs sort last
        n = np.sum(~nan, axis=-1, keepdims=True)
        lo = np.take_along_axis(srt, np.maximum((n - 1) // 2, 0), axis=-1)
        hi = np.take_along_axis(srt, np.maximum(n // 2, 0), axis=-1)
        out = np.where(n > 0, 0.5 * (lo + hi), np.nan)
    out = np.moveaxis(out, -1, axis)
    return out if keepdims else np.squeeze(out, axis=axis)


def robust_std(x, axis=-1):
    """Standard deviation estimated from the median absolute deviation (NaNs ignored)."""
    x = np.asarray(x, dtype=float)
    med = nanmedian(x, axis=axis, keepdims=True)
    return MAD_TO_SIGMA * nanmedian(np.abs(x - med), axis=axis)


def p2p_scatter(x, axis=-1, *, clip=5.0):
    """Robust point-to-point scatter: white noise per point, insensitive to slow trends and outliers.

    RMS of the successive differences within ``clip`` MAD-sigmas of their median, over sqrt(2)
    (nearly as efficient as a plain RMS, unlike a pure MAD); NaNs are ignored (a NaN frame
    spoils its two differences).
    """
    d = np.moveaxis(np.diff(np.asarray(x, dtype=float), axis=axis), axis, -1)
    med = nanmedian(d, axis=-1, keepdims=True)
    dev = np.abs(d - med)
    s0 = MAD_TO_SIGMA * nanmedian(dev, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = dev <= clip * s0
        ms = np.sum(np.where(ok, dev ** 2, 0.0), axis=-1) / np.sum(ok, axis=-1)
    return np.sqrt(ms / 2.0)


def binned_scatter(x, time, dt, axis=-1):
    """Standard deviation of the means of ``x`` in time bins of width ``dt`` (days), times sqrt(n).

    Red noise (trends on the bin scale) keeps this high where the point-to-point scatter would not;
    multiplied by sqrt(mean points per bin) so it is comparable to a per-point scatter.
    """
    x = np.moveaxis(np.asarray(x, dtype=float), axis, -1)
    order, starts = bin_edges(time, dt)
    xs = x[..., order]
    ok = np.isfinite(xs)
    sums = np.add.reduceat(np.where(ok, xs, 0.0), starts, axis=-1)
    counts = np.add.reduceat(ok, starts, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
        n_mean = np.mean(counts, axis=-1)
    return np.nanstd(means, axis=-1) * np.sqrt(n_mean)


def usable_frames(flux, target, *, min_fraction=0.5):
    """Frames usable for statistics, per aperture: (n_apertures, n_frames) bool.

    A frame is usable when the target flux is finite and at least ``min_fraction`` of the stars
    measured in that aperture at all are finite (frames rejected upstream are all-NaN and drop
    out here; a star never measured, e.g. saturated or too near the edge all night, does not
    count), in apertures where the target's median flux is positive. A faint target's negative
    fluctuations are kept: dropping them would bias its flux upwards.
    """
    flux = np.asarray(flux, dtype=float)
    t = flux[:, target, :]
    finite = np.isfinite(t)
    with np.errstate(invalid="ignore"):
        level = nanmedian(np.where(finite, t, np.nan), axis=-1)
    good_t = finite & (np.nan_to_num(level, nan=-1.0) > 0)[:, None]
    measured = np.isfinite(flux)
    present = measured.any(axis=-1)
    frac = measured.sum(axis=1) / np.maximum(present.sum(axis=1), 1)[:, None]
    return good_t & (frac >= min_fraction)


def select_comparisons(flux, *, target, frames, peak=None, saturation=None, saturated=None,
                       max_comps=20, exclude=()):
    """Candidate comparison stars: (n_apertures, n_stars) bool.

    A candidate is not the target nor in ``exclude``, never saturated (a ``saturated`` flag,
    (n_stars, n_frames), in any frame; these come from the raw pixels. Without flags, ``peak >=
    SATURATION_FRACTION * saturation`` in any frame, ``peak`` and ``saturation`` in the same ADU),
    finite and positive in every usable frame of that aperture; of these, the ``max_comps``
    brightest (median flux in the middle aperture) are kept.
    """
    flux = np.asarray(flux, dtype=float)
    n_ap, n_stars, _ = flux.shape
    ok_frames = frames[:, None, :]
    valid = np.all(~ok_frames | (np.isfinite(flux) & (flux > 0)), axis=-1)
    valid &= frames.any(axis=-1)[:, None]
    bad = np.zeros(n_stars, bool)
    bad[target] = True
    bad[list(exclude)] = True
    if saturated is not None:
        bad |= np.any(np.asarray(saturated, bool), axis=-1)
    elif peak is not None and saturation is not None and np.isfinite(saturation):
        with np.errstate(invalid="ignore"):
            bad |= np.any(np.asarray(peak, float) >= SATURATION_FRACTION * saturation, axis=-1)
    valid &= ~bad[None, :]
    mid = n_ap // 2 if frames[n_ap // 2].any() else int(np.argmax(frames.sum(axis=-1)))
    with np.errstate(invalid="ignore"):
        level = nanmedian(np.where(ok_frames[mid], flux[mid], np.nan), axis=-1)
    level = np.where(np.isfinite(level) & (valid.sum(0) > 0), level, -np.inf)
    ranked = [i for i in np.argsort(-level) if np.isfinite(level[i]) and not bad[i]]
    keep = np.zeros(n_stars, bool)
    keep[ranked[:max_comps]] = True
    return valid & keep[None, :]


def _normalise(flux, frames):
    """Each series divided by its median over usable frames; unusable frames set to NaN."""
    med = frame_median(flux, frames)
    with np.errstate(invalid="ignore", divide="ignore"):
        return med, np.where(frames[:, None, :], flux, np.nan) / med


def _leave_one_out_sigma(n, w, m):
    """Relative scatter of each star divided by the weighted ensemble of the others: (A, C)."""
    sw = np.einsum("ac,acf->af", w, n)
    wsum = w.sum(axis=1)
    denom = wsum[:, None] - w
    with np.errstate(invalid="ignore", divide="ignore"):
        ens = (sw[:, None, :] - w[..., None] * n) / denom[..., None]
        d = n / ens
        nm = m.sum(axis=-1)
        mean = np.einsum("acf,af->ac", np.nan_to_num(d), m) / nm[:, None]
        r = np.where(m[:, None, :], d / mean[..., None] - 1.0, 0.0)
        var = np.einsum("acf,acf->ac", r, r) / (nm[:, None] - 1)
    return np.sqrt(var)


def _noise_outliers(sigma, expected, active, reject):
    """Comparisons whose scatter exceeds ``reject`` x a fitted model sigma^2 = a*expected^2 + b."""
    out = np.zeros_like(active)
    for a in range(sigma.shape[0]):
        # a comparison with no scatter at all (sigma 0) cannot be noisier than the model, and
        # would divide by zero below: it is never an outlier
        idx = np.flatnonzero(active[a] & np.isfinite(sigma[a]) & (sigma[a] > 0) & np.isfinite(expected[a]))
        if idx.size < 3:
            continue
        y, x = sigma[a, idx] ** 2, expected[a, idx] ** 2
        keep = np.ones(idx.size, bool)
        for _ in range(5):
            design = np.column_stack([x[keep], np.ones(keep.sum())]) / y[keep, None]
            coef = _nonneg_lstsq2(design, np.ones(keep.sum()))
            model = coef[0] * x + coef[1]
            if not np.any(model > 0):
                break
            new = y <= reject ** 2 * model
            if new.sum() < 2 or np.array_equal(new, keep):
                keep = new if new.sum() >= 2 else keep
                break
            keep = new
        out[a, idx[~keep]] = True
    return out


def _inverse_square(sigma, active):
    """``1 / sigma^2`` where ``active`` and sigma is finite and positive, else 0: a star with no
    noise estimate (zero or non-finite, e.g. constant or infinite flux) gets no weight, and the
    division is not even tried there (no "divide by zero" warning)."""
    sigma = np.asarray(sigma, float)
    ok = active & np.isfinite(sigma) & (sigma > 0)
    w = np.zeros(sigma.shape)
    np.divide(1.0, np.square(sigma, where=ok, out=np.ones(sigma.shape)), out=w, where=ok)
    return np.where(np.isfinite(w), w, 0.0)


def _nonneg_lstsq2(design, target):
    """Least squares for two non-negative coefficients (tiny NNLS without scipy)."""
    coef = np.linalg.lstsq(design, target, rcond=None)[0]
    if np.all(coef >= 0):
        return coef
    best, best_cost = np.zeros(2), np.sum(target ** 2)
    for j in range(2):
        col = design[:, j]
        c = max(float(col @ target) / float(col @ col), 0.0) if col @ col > 0 else 0.0
        cost = np.sum((target - c * col) ** 2)
        if cost < best_cost:
            best, best_cost = np.eye(2)[j] * c, cost
    return best


def weights_broeg(flux, error=None, *, comps, frames=None, iterations=50, tol=1e-4, reject=1.5):
    """Broeg (2005) weights of comparison stars, per aperture.

    Parameters
    ----------
    flux, error : (n_apertures, n_stars, n_frames) raw fluxes and errors (errors may be NaN/None).
    comps : (n_apertures, n_stars) bool, candidate comparison stars.
    frames : (n_apertures, n_frames) bool, frames used for the statistics (default: all).
    iterations : maximum number of weight iterations.
    tol : convergence on the largest relative weight change.
    reject : a comparison is dropped when its scatter exceeds ``reject`` times the fitted noise
        model ``sigma^2 = a*expected^2 + b`` (expected = photon error, or 1/sqrt(flux) without
        errors), fitted over the comparisons while iteratively leaving the outliers out; then the
        weights are iterated again without the dropped stars.
        The threshold is widened by ``1 + 3 / sqrt(2 (n_frames - 1))`` for the sampling noise of a
        scatter measured on few frames. With fewer than 10 frames the scatter means nothing: the
        weights are then the inverse expected variances, without iteration or rejection.

    Returns
    -------
    weights : (n_apertures, n_stars), zero for non-comparisons, summing to 1 per aperture.
    info : dict with ``sigma`` (n_apertures, n_stars) final relative scatter of each comparison,
        ``rejected`` (n_apertures, n_stars) bool and ``iterations`` used.
    """
    flux = np.asarray(flux, dtype=float)
    n_ap, n_stars, n_fr = flux.shape
    comps = np.broadcast_to(np.asarray(comps, bool), (n_ap, n_stars))
    frames = np.ones((n_ap, n_fr), bool) if frames is None else np.asarray(frames, bool)
    cidx = np.flatnonzero(comps.any(axis=0))
    weights = np.zeros((n_ap, n_stars))
    sigma_all = np.full((n_ap, n_stars), np.nan)
    if cidx.size == 0:
        return weights, {"sigma": sigma_all, "rejected": np.zeros((n_ap, n_stars), bool),
                         "iterations": 0}
    rejected = np.zeros((n_ap, cidx.size), bool)
    f = flux[:, cidx, :]
    med, n = _normalise(f, frames)
    n = np.where(frames[:, None, :], n, 1.0)
    finite = np.isfinite(n)
    active = comps[:, cidx] & np.all(finite, axis=-1)  # a comparison must exist in every frame
    n = np.where(finite, n, 1.0)
    expected = _expected_noise(f, None if error is None else np.asarray(error, float)[:, cidx, :],
                               med, frames)
    w = _inverse_square(expected, active)
    used, sigma = 0, np.full(active.shape, np.nan)
    n_used = frames.sum(axis=1).max()
    # allow for the sampling noise of a scatter measured on few frames (3 sigma of it)
    slack = 1.0 + 3.0 / np.sqrt(max(2.0 * (n_used - 1), 1.0))
    for _round in range(5 if n_used >= 10 else 0):  # < 10 frames: expected-noise weights only
        for used_round in range(1, iterations + 1):
            sigma = _leave_one_out_sigma(n, w, frames)
            new = _inverse_square(sigma, active)
            single = active.sum(axis=1) == 1
            new[single] = active[single].astype(float)
            step = np.abs(new - w)  # relative change; a weight dropped to 0 counts as a change of 1
            rel = np.divide(step, new, out=np.where(step > 0, 1.0, 0.0), where=new > 0)
            change = np.max(rel, initial=0.0, where=active)
            w = new
            if change < tol:
                break
        used += used_round
        outliers = _noise_outliers(sigma, expected, active & (w > 0), reject * slack)
        if not outliers.any():
            break
        rejected |= outliers
        active &= ~outliers
        w = np.where(active, w, 0.0)
    total = w.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(total > 0, w / total, 0.0)
    weights[:, cidx] = w
    sigma_all[:, cidx] = np.where(comps[:, cidx], sigma, np.nan)
    full_rej = np.zeros((n_ap, n_stars), bool)
    full_rej[:, cidx] = rejected
    return weights, {"sigma": sigma_all, "rejected": full_rej, "iterations": used}


def _expected_noise(f, e, med, frames):
    """Expected relative noise per star (A, C): median e/f, or 1/sqrt(flux) without errors."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if e is not None:
            rel = np.where(frames[:, None, :], e / f, np.nan)
            out = nanmedian(rel, axis=-1)
            if np.all(np.isfinite(out[np.isfinite(med[..., 0])])):
                return out
        return 1.0 / np.sqrt(np.abs(med[..., 0]))


def differential(flux, error=None, weights=None, *, frames=None, leave_one_out=True):
    """Differential light curves of every star against the weighted comparison ensemble.

    Each star's flux is divided by its median, then by the ensemble ``E = sum(w_k n_k) / sum(w_k)``
    of the normalised comparison fluxes ``n_k`` (for a comparison star itself, the ensemble of the
    *others* when ``leave_one_out``), and renormalised to a median of 1 over ``frames``. Errors are
    the quadrature sum of the star's relative error and the ensemble's relative error
    ``sqrt(sum(w_k^2 sigma_k^2)) / sum(w_k)`` (sigma_k the relative error of comparison k).

    Parameters
    ----------
    flux, error : (n_apertures, n_stars, n_frames); ``error`` may be None (errors are then NaN).
    weights : (n_apertures, n_stars) or (n_stars,), non-negative; zero for non-comparisons.
    frames : (n_apertures, n_frames) bool used for the normalisation (default: all finite).

    Returns
    -------
    diff, diff_error : (n_apertures, n_stars, n_frames); NaN where no ensemble exists.
    """
    flux = np.asarray(flux, dtype=float)
    n_ap, n_stars, n_fr = flux.shape
    w = np.broadcast_to(np.asarray(weights, dtype=float), (n_ap, n_stars))
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite and non-negative")
    err = np.full_like(flux, np.nan) if error is None else np.asarray(error, dtype=float)
    if frames is None:
        frames = np.ones((n_ap, n_fr), bool)
    cidx = np.flatnonzero(np.any(w > 0, axis=0))
    wc = w[:, cidx]
    use = wc[..., None] > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        fc = flux[:, cidx, :]
        relc = err[:, cidx, :] / fc
        nc = np.where(use, fc / frame_median(fc, frames), 0.0)
        vc = np.where(use, (nc * relc) ** 2, 0.0)
        sw = np.einsum("ac,acf->af", wc, nc)
        sv = np.einsum("ac,acf->af", wc ** 2, vc)
        wsum = wc.sum(axis=1)[:, None]
        ens = (sw / wsum)[:, None, :]
        # a star's own median cancels in the final renormalisation, so only comparisons need it
        d = flux / ens
        d_rel2 = (err / flux) ** 2 + ((sv / wsum ** 2)[:, None, :] / ens ** 2)
        if leave_one_out and cidx.size:
            denom = (wsum - wc)[..., None]
            loo = (sw[:, None, :] - wc[..., None] * nc) / denom
            loo_rel2 = (sv[:, None, :] - wc[..., None] ** 2 * vc) / denom ** 2 / loo ** 2
            d[:, cidx, :] = np.where(use, fc / loo, d[:, cidx, :])
            d_rel2[:, cidx, :] = np.where(use, relc ** 2 + loo_rel2, d_rel2[:, cidx, :])
        d /= frame_median(d, frames)
        d_err = np.sqrt(d_rel2, out=d_rel2)
        d_err *= np.abs(d)
    return d, d_err


def frame_median(x, frames):
    """Median of ``x`` (n_apertures, n_stars, n_frames) over each aperture's usable ``frames``.

    Returns (n_apertures, n_stars, 1). Apertures sharing a frame mask (the usual case) are done
    together on the selected frames, so NaN-free data take numpy's fast partition median.
    """
    frames = np.asarray(frames, bool)
    if frames.all():
        return nanmedian(x, axis=-1, keepdims=True)
    out = np.full(x.shape[:-1] + (1,), np.nan)
    groups: dict[bytes, list[int]] = {}
    for a, row in enumerate(np.packbits(frames, axis=1)):
        groups.setdefault(row.tobytes(), []).append(a)
    for idx in groups.values():
        mask = frames[idx[0]]
        if mask.any():
            sub = x if len(idx) == x.shape[0] else x[idx]
            out[idx] = nanmedian(sub[..., mask], axis=-1, keepdims=True)
    return out


MIN_APERTURE_COVERAGE = 0.99


def best_aperture(diff, *, time=None, method="p2p", dt=None, frames=None,
                  min_coverage=MIN_APERTURE_COVERAGE, seeing=None, anchor=None):
    """Index of the aperture whose light curve ``diff`` (n_apertures, n_frames) scatters least.

    ``method``: ``"p2p"`` robust point-to-point scatter (default; ignores slow astrophysical trends
    such as a transit), ``"binned"`` scatter of ``dt``-day bin means (needs ``time``; sensitive to red
    noise), ``"std"`` plain standard deviation. Apertures that measure the target on fewer than
    ``min_coverage`` x the frames of the best-covered one (radii leaving the frame or overlapping
    masked pixels on some frames: NaN there) are skipped. With ``seeing`` (n_frames,), e.g. the
    FWHM, each curve's trend with the seeing relative to the ``anchor`` aperture (default: the
    smallest one whose scatter is as good as the best within sampling noise) is added in
    quadrature (see ``_seeing_penalty``): p2p is blind to slow trends, and on a short night a
    seeing-driven one (neighbours' light entering wide apertures in a crowded field) is slow.
    Returns ``(index, metric)`` with metric (n_apertures,), inf for skipped apertures.
    """
    diff = np.asarray(diff, dtype=float)
    if frames is not None:
        diff = np.where(frames, diff, np.nan)
    coverage = np.isfinite(diff).sum(axis=-1)
    if time is not None:
        diff = diff[:, np.argsort(time, kind="stable")]
    if method == "p2p":
        metric = p2p_scatter(diff)
    elif method == "binned":
        if time is None or dt is None:
            raise ValueError("method='binned' needs time and dt")
        metric = binned_scatter(diff, np.sort(time), dt)
    elif method == "std":
        metric = np.nanstd(diff, axis=-1)
    else:
        raise ValueError(f"unknown method {method!r}; use 'p2p', 'binned' or 'std'")
    if seeing is not None:
        covered = np.isfinite(metric) & (coverage >= min_coverage * coverage.max(initial=0))
        if anchor is None and covered.any():
            anchor = _good_smallest(metric, covered, coverage.max(initial=0))
        metric = np.hypot(metric, _seeing_penalty(diff, seeing, time, covered, anchor))
    metric = np.where(np.isfinite(metric) & (metric > 0), metric, np.inf)
    metric = np.where(coverage >= min_coverage * coverage.max(initial=0), metric, np.inf)
    if not np.any(np.isfinite(metric)):
        raise ValueError("no aperture gives a finite differential light curve")
    return int(np.argmin(metric)), metric


def _good_smallest(metric, covered, n):
    """The smallest ``covered`` aperture whose scatter is within the sampling noise of a scatter
    measured on ``n`` frames (1 / sqrt(2 (n - 1))) of the best one: as good as any, and holding
    the least light of neighbours."""
    best = np.min(metric[covered])
    ok = covered & (metric <= best * (1.0 + 1.0 / np.sqrt(max(2.0 * (n - 1), 1.0))))
    return int(np.flatnonzero(ok)[0])


def _seeing_penalty(diff, seeing, time, covered, anchor):
    """Per aperture, the RMS of ``diff / diff[anchor]`` that follows the seeing, less what white
    noise alone gives a fitted slope (its variance is sigma^2 / n, sigma from ``p2p_scatter``).

    The ratio cancels the target's own signal (the same in every aperture), which may follow the
    seeing by chance; what is left is the aperture's: a comparison ensemble whose neighbours'
    light enters its apertures as the seeing changes. ``anchor`` (default the smallest aperture
    in ``covered``) should be a small aperture that is already good (see ``_good_smallest``): it
    lets in the least light of neighbours. An anchor not ``covered`` moves to the nearest one."""
    s = np.asarray(seeing, float)
    s = s if time is None else s[np.argsort(time, kind="stable")]
    full = np.flatnonzero(covered)
    if full.size == 0 or s.shape != diff.shape[-1:]:
        return np.zeros(diff.shape[0])
    a = full[0] if anchor is None else int(full[np.argmin(np.abs(full - int(anchor)))])
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = diff / diff[a]
    n = np.isfinite(ratio).sum(axis=-1)
    noise = np.nan_to_num(p2p_scatter(ratio)) ** 2 / np.maximum(n, 1)
    excess = np.nan_to_num(seeing_trend(ratio, s)) ** 2 - noise
    return np.sqrt(np.clip(excess, 0.0, None))


def seeing_trend(diff, seeing):
    """RMS of the part of each curve ``diff`` (n_apertures, n_frames) explained by a straight-line
    fit against ``seeing`` (n_frames,); NaNs ignored, 0 where the seeing does not vary.

    Never astrophysical: a star's light does not follow the seeing, its measurement does (a
    neighbour's wings entering the aperture, a too-small aperture losing light)."""
    diff = np.asarray(diff, dtype=float)
    s = np.broadcast_to(np.asarray(seeing, float), diff.shape)
    ok = np.isfinite(diff) & np.isfinite(s)
    n = ok.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ms = np.sum(np.where(ok, s, 0.0), axis=-1) / n
        md = np.sum(np.where(ok, diff, 0.0), axis=-1) / n
        ds = np.where(ok, s - ms[..., None], 0.0)
        dd = np.where(ok, diff - md[..., None], 0.0)
        var_s = np.sum(ds * ds, axis=-1)
        slope = np.sum(ds * dd, axis=-1) / var_s
        out = np.abs(slope) * np.sqrt(var_s / n)
    return np.where((n >= 3) & (var_s > 0) & np.isfinite(out), out, 0.0)


def bin_edges(time, dt):
    """Time order and start index of each ``dt``-wide bin (bins start at the earliest time).

    Returns ``(order, starts)``: ``time[order]`` is sorted and ``starts`` indexes, in that sorted
    array, the first frame of each non-empty bin (as needed by ``np.add.reduceat``).
    """
    time = np.asarray(time, dtype=float)
    if not dt > 0:
        raise ValueError(f"bin width dt must be > 0 days, got {dt!r}")
    if time.size == 0:
        raise ValueError("cannot bin an empty series")
    order = np.argsort(time, kind="stable")
    ts = time[order]
    k = np.floor((ts - ts[0]) / dt).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, np.diff(k) > 0])
    return order, starts


def binned(time, values, dt, *, error=None, estimate_error=True):
    """Mean of ``values`` (..., n_frames) in ``dt``-day time bins, NaNs ignored.

    Errors: with ``estimate_error`` the standard error of the mean from the scatter in the bin
    (``std(ddof=1) / sqrt(n)``), falling back to the propagated error when n == 1; otherwise the
    propagated error ``sqrt(sum(e^2)) / n``. Returns ``(time_b, mean, err, n)`` with ``n`` the
    number of finite values per bin (same shape as ``mean``); ``time_b`` is the mean frame time.
    """
    values = np.asarray(values, dtype=float)
    order, starts = bin_edges(time, dt)
    t = np.asarray(time, float)[order]
    counts_t = np.diff(np.r_[starts, t.size])
    time_b = np.add.reduceat(t, starts) / counts_t
    v = values[..., order]
    ok = np.isfinite(v)
    n = np.add.reduceat(ok, starts, axis=-1)
    s1 = np.add.reduceat(np.where(ok, v, 0.0), starts, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        idx = np.repeat(np.arange(starts.size), counts_t)
        dev = np.where(ok, v - mean[..., idx], 0.0)
        ss = np.add.reduceat(dev ** 2, starts, axis=-1)
        prop = np.full_like(mean, np.nan)
        if error is not None:
            e = np.broadcast_to(np.asarray(error, float), values.shape)[..., order]
            e2 = np.add.reduceat(np.where(ok, e ** 2, 0.0), starts, axis=-1)
            prop = np.sqrt(e2) / n
        if estimate_error:
            est = np.sqrt(ss / (n - 1)) / np.sqrt(n)
            err = np.where(n > 1, est, prop)
        else:
            err = prop
        mean = np.where(n > 0, mean, np.nan)
        err = np.where(n > 0, err, np.nan)
    return time_b, mean, err, n
