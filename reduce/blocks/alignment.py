"""AlignReferenceSources: place the reference stars on each frame (forced photometry positions).

Each frame's own detections are matched to the reference's by triangle asterisms (see
:mod:`reduce.algorithms.asterism`): invariant to translation, rotation, flip and small scale
changes, robust to missing and extra stars, capped to the ``n`` brightest well-spread stars so it
stays fast with hundreds of detections, and solved independently for every frame (a sudden jump
between consecutive frames does not matter). Fields too sparse for asterisms (a CCD window with a
few stars) fall back, in order, on a voted translation of the brightest stars, one unambiguous
star, then a cross-correlation of the frame's pixels with the rendered reference stars (see
:mod:`reduce.algorithms.translation`); each method refuses what it cannot place significantly. A
frame no method can place raises AlignmentFailed with every method's reason: it is flagged, never
given wrong positions. Match radii follow the FWHM (the frame's, else the reference's).
"""
from __future__ import annotations

import logging
from collections import Counter

import numpy as np

from ..algorithms.asterism import MatchError, StarSet, apply_transform, match, transform_summary
from ..algorithms.translation import correlate, refine, single_star, vote_translation
from ..core.block import Block
from ..model.errors import AlignmentFailed
from ..model.image import Image, Sources

__all__ = ["AlignReferenceSources", "AlignmentMethods", "METHODS", "MAX_STARS"]

log = logging.getLogger("reduce")

#: the placement methods, tried in this order (``image.computed['alignment']['method']``)
METHODS = ("asterism", "translation", "single star", "cross-correlation")

# default cap of the stars measured on every frame (see AlignReferenceSources.max_stars). Each
# star costs ~0.1 ms per frame (centroid, 30 apertures, sky): with 100, a 650x500 frame holding
# 1,000 stars takes ~28 ms (was ~200 ms). On that real night (HAT-P-32, 270 px drift) the light curve's scatter
# is the same with 100, 150, 200, 400 or all stars (0.47 % per frame, 22 comparisons survive the
# drift) and worse with 50 (0.66 %, 12): twice the default recipe's 50 comparisons leaves room
# for stars that drift off, vary or are rejected
MAX_STARS = 100


def _reference_sources(reference) -> Sources:
    """The reference star list from an Image (its ``sources``), a Sources or an (n, 2) array."""
    if isinstance(reference, Image):
        if reference.sources is None or len(reference.sources) == 0:
            raise ValueError("the reference image has no sources: run the detection on it first")
        return reference.sources.copy()
    if isinstance(reference, Sources):
        return reference.copy()
    coords = np.asarray(reference, dtype=float)
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise TypeError("reference must be an Image with sources, a Sources or an (n, 2) array of x, y")
    return Sources(coords)


def _size(sources):
    """sqrt(a b) of each source (its second-moment size, px), or None when unknown."""
    if sources is None or sources.a is None or sources.b is None:
        return None
    return np.sqrt(np.abs(sources.a * sources.b))


def _positive(v) -> float | None:
    """``v`` as a float when it is a finite positive number, else None."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) and v > 0 else None


class AlignReferenceSources(Block):
    """Match each frame's detected stars to the reference and replace ``image.sources`` with the
    reference sources mapped onto the frame (same order, so star i is the same star everywhere).

    Parameters
    ----------
    reference : Image with ``sources`` (e.g. the calibrated, detected reference frame), Sources,
        or an (n, 2) array of x, y in pixels.
    n : maximum number of stars (brightest, well spread) used for the asterisms.
    tolerance : match radius in pixels; by default 0.75 FWHM (the frame's, else the reference's),
        at least 2 px.
    min_match : minimum number of stars that must agree with an asterism transform.
    max_rms : maximum rms residual (px) of the asterism fit (default ``tolerance / 2``).
    max_scale : largest accepted scale change between the reference and a frame (and its inverse).
    allow_flip : accept mirrored fields (e.g. a German mount's meridian flip seen as a flip).
    fallbacks : when asterisms fail (few stars), try a voted translation, one unambiguous star, then
        a cross-correlation of the pixels (each accepts only a significant answer).
    max_stars : on a field with more stars, only the ``max_stars`` brightest unsaturated ones
        (saturated stars are never comparisons) and the target are measured on every frame;
        ``None`` measures every detected star. The runner caps the reference's star list with
        :meth:`measured` before the frames run, so indices (``--target N``, comparisons, the
        reference figure) refer to that list, the target last when it is not among them.
        Per-frame cost then stops growing with the number of stars (~0.1 ms per star and frame for
        centroids, 30 apertures and sky), while comparisons come from the brightest stars anyway.

    Sets ``image.transform`` (3x3, reference pixel -> frame pixel), ``image.dx``/``image.dy``
    (the shift of the reference frame's centre, px), ``image.sources`` and
    ``image.computed['alignment']`` (``method``, one of :data:`METHODS`, matched stars, rms,
    scale, rotation in degrees, flip). Sources mapped outside the frame get their ``edge`` flag.
    """

    requires = ("sources",)
    provides = ("transform", "dx", "dy", "sources")

    def __init__(self, reference=None, *, n: int = 30, tolerance: float | None = None, min_match: int = 6,
                 max_rms: float | None = None, max_scale: float = 1.1, allow_flip: bool = True,
                 fallbacks: bool = True, max_stars: int | None = MAX_STARS):
        if int(n) != n or n < 5:
            raise ValueError(f"n must be an integer >= 5, got {n!r}")
        if tolerance is not None and not tolerance > 0:
            raise ValueError(f"tolerance must be a positive number of pixels (or None: from the FWHM), "
                             f"got {tolerance!r}")
        if int(min_match) != min_match or min_match < 4:
            raise ValueError(f"min_match must be an integer >= 4, got {min_match!r}")
        if max_rms is not None and not max_rms > 0:
            raise ValueError(f"max_rms must be positive, got {max_rms!r}")
        if not max_scale > 1:
            raise ValueError(f"max_scale must be > 1, got {max_scale!r}")
        if max_stars is not None and (int(max_stars) != max_stars or max_stars < 1):
            raise ValueError(f"max_stars must be a positive integer (or null for every star), got {max_stars!r}")
        self.max_stars = None if max_stars is None else int(max_stars)
        self.reference = reference
        self.n = int(n)
        self.tolerance = None if tolerance is None else float(tolerance)
        self.min_match = int(min_match)
        self.max_rms = max_rms
        self.max_scale = float(max_scale)
        self.allow_flip = bool(allow_flip)
        self.fallbacks = bool(fallbacks)
        self._ref = None
        self._set = None
        self._center = None
        self._ref_fwhm = None
        self._ref_shape = None
        self._min_distance = None
        if reference is not None:
            self.set_reference(reference)

    def set_reference(self, reference) -> None:
        """Use ``reference`` (Image with sources, Sources or (n, 2) array) from now on."""
        self.reference = reference
        self._ref = _reference_sources(reference)
        self._ref_fwhm = _positive(getattr(reference, "fwhm", None))
        self._min_distance = 5.0 * self._tolerance(self._ref_fwhm)
        self._set = StarSet(self._ref.coords, n=self.n, min_distance=self._min_distance)
        shape = getattr(reference, "shape", ())
        self._ref_shape = tuple(shape) if len(shape) == 2 else None
        if len(shape) == 2:
            self._center = np.array([(shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0])
        else:
            self._center = np.nanmean(self._ref.coords, axis=0)

    def measured(self, sources, keep=()) -> np.ndarray:
        """Indices of the stars of ``sources`` (brightest first) to measure on every frame.

        Every star when there are at most ``max_stars``; else the ``max_stars`` brightest
        unsaturated ones, in order, then the ``keep`` ones (e.g. the target) not among them, so
        the first indices never depend on the target."""
        n = len(sources)
        if self.max_stars is None or n <= self.max_stars:
            return np.arange(n)
        idx = np.flatnonzero(~np.asarray(sources.saturated, bool))[: self.max_stars]
        extra = [int(k) for k in dict.fromkeys(keep) if int(k) not in set(idx.tolist())]
        return np.concatenate([idx, np.asarray(extra, int)]) if extra else idx

    def setup(self, context=None) -> None:
        """Take the reference from ``context.reference`` when none was given."""
        if self._ref is None and getattr(context, "reference", None) is not None:
            self.set_reference(context.reference)

    def _tolerance(self, fwhm) -> float:
        """The match radius: the given one, else 0.75 FWHM with a 2 px floor (2 px without FWHM)."""
        if self.tolerance is not None:
            return self.tolerance
        return max(2.0, 0.75 * fwhm) if fwhm else 2.0

    def run(self, image) -> None:
        if self._ref is None:
            raise ValueError("AlignReferenceSources has no reference: pass reference=<Image with sources>")
        detected = image.sources
        xy = np.zeros((0, 2)) if detected is None else detected.coords
        flux = None if detected is None else detected.flux
        tol = self._tolerance(_positive(image.fwhm) or self._ref_fwhm)
        chain = {"asterism": self._by_asterism, "translation": self._by_translation,
                 "single star": self._by_single_star, "cross-correlation": self._by_cross_correlation}
        reasons = []
        for name in METHODS if self.fallbacks else METHODS[:1]:
            try:
                t, info = chain[name](image, xy, flux, tol)
                break
            except MatchError as e:
                reasons.append(f"{name}: {e}")
        else:
            what = "no star detected" if not len(xy) else f"{len(xy)} star(s) detected"
            image.computed["alignment"] = {"method": None, "why": "; ".join(reasons)}
            raise AlignmentFailed(f"{what}, no method placed the frame ({'; '.join(reasons)})")
        out = self._ref.copy()
        out.coords = apply_transform(t, self._ref.coords)
        out.peak = None  # ``saturated`` stays the reference's: a star clipped there is never a comparison
        out.edge = self._outside(out.coords, image)
        shift = apply_transform(t, self._center[None])[0] - self._center
        image.sources = out
        image.transform = t
        image.dx, image.dy = float(shift[0]), float(shift[1])
        image.computed["alignment"] = {"method": name, **info, **transform_summary(t)}

    # -- the methods, in the order of METHODS: each returns (transform, info) or raises MatchError
    def _by_asterism(self, image, xy, flux, tol):
        if len(xy) < 3:
            raise MatchError(f"too few stars ({len(xy)}) for asterisms")
        xy = self._like_reference(image.sources, xy)
        m = match(self._set, xy, n=self.n, tolerance=tol, min_match=self.min_match, max_rms=self.max_rms,
                  max_scale=self.max_scale, allow_flip=self.allow_flip, min_distance=self._min_distance)
        return m.transform, {"matched": m.n_matched, "votes": m.votes, "rms": m.rms}

    def _like_reference(self, detected, xy):
        """The frame's detections to match against a reference list holding no saturated star
        (capped by :meth:`measured`): its unsaturated ones, when at least ``min_match`` remain.

        Like with like: the frame's brightest stars are mostly saturated on a dense field, so
        with them its brightest asterisms share only a few stars with the reference's and the
        first matching attempt fails (on the HAT-P-32 night, every frame tried twice: ~2x the
        cost). The transform is then refined on the unsaturated stars matched, the only ones the
        reference list holds."""
        sat = None if detected is None else detected.saturated
        if sat is None or self._ref.saturated is None or np.any(self._ref.saturated):
            return xy
        sat = np.asarray(sat, bool)
        if not sat.any() or len(sat) != len(xy) or np.count_nonzero(~sat) < self.min_match:
            return xy
        return xy[~sat]

    def _by_translation(self, image, xy, flux, tol):
        p = vote_translation(self._ref.coords, xy, tolerance=tol, shape=image.shape or None)
        return p.transform, {"matched": p.n_matched, "rms": p.rms, "false_alarm": p.score}

    def _by_single_star(self, image, xy, flux, tol):
        p = single_star(self._ref.coords, self._ref.flux, xy, flux, tolerance=tol, shape=image.shape or None,
                        ref_size=_size(self._ref), size=_size(image.sources))
        return p.transform, {"matched": 1, "rms": 0.0}

    def _by_cross_correlation(self, image, xy, flux, tol):
        if image.data is None:
            raise MatchError("no pixels to correlate")
        fwhm = _positive(image.fwhm) or self._ref_fwhm or 3.0  # a typical seeing when nothing says
        p = correlate(self._ref.coords, image.data, fwhm=fwhm, ref_shape=self._ref_shape,
                      bkg=image.bkg, rms=image.bkg_rms)
        # detections near the peak's placement sharpen it (and fit a small rotation)
        t, pairs, rms = refine(p.transform, self._ref.coords, xy, tolerance=tol)
        if len(pairs) < 2:
            t, pairs, rms = p.transform, (), float("nan")
        return t, {"matched": len(pairs), "rms": rms, "snr": p.score}

    @staticmethod
    def _outside(xy: np.ndarray, image) -> np.ndarray:
        """True for positions that are NaN or off the frame's pixel grid."""
        bad = ~np.isfinite(xy).all(axis=1)
        if len(image.shape) == 2:
            ny, nx = image.shape
            with np.errstate(invalid="ignore"):
                bad |= (xy[:, 0] < 0) | (xy[:, 0] > nx - 1) | (xy[:, 1] < 0) | (xy[:, 1] > ny - 1)
        return bad


class AlignmentMethods(Block):
    """Count which method placed each frame (``image.computed['alignment']['method']``) and log
    it once at the end: ``counts`` maps each of :data:`METHODS` (and ``failed``, ``not reached``
    for frames rejected before the alignment) to a number of frames. ``reduce run`` adds it to
    every chain holding AlignReferenceSources (so it is not a recipe block)."""

    collector = True
    register = False

    def __init__(self, *, label: str = "alignment"):
        self.label = str(label)
        self.counts: dict[str, int] = {}

    def setup(self, context=None) -> None:
        """Start counting anew (a Sequence may be run more than once)."""
        self.counts = {}

    def run(self, image) -> None:
        info = image.computed.get("alignment")
        key = "not reached" if info is None else (info.get("method") or "failed")
        self.counts[key] = self.counts.get(key, 0) + 1

    def finish(self) -> None:
        """Log how many frames each method placed (nothing when no frame was seen)."""
        if not self.counts:
            return
        c = Counter(self.counts)
        placed = sum(c[m] for m in METHODS)
        parts = ", ".join(f"{c[m]} by {m}" for m in METHODS if c[m])
        tail = "".join(f"; {c[k]} {k}" for k in ("failed", "not reached") if c[k])
        log.info("%s: %d of %d frame(s) aligned%s%s", self.label, placed, sum(c.values()),
                 f" ({parts})" if parts else "", tail)
