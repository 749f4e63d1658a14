"""AlignReferenceSources: place the reference stars on each frame (forced photometry positions).

Each frame's own detections are matched to the reference's by triangle asterisms (see
:mod:`reduce.algorithms.asterism`): invariant to translation, rotation, flip and small scale
changes, robust to missing and extra stars, capped to the ``n`` brightest well-spread stars so it
stays fast with hundreds of detections, and solved independently for every frame (a sudden jump
between consecutive frames does not matter). A frame that cannot be matched reliably raises
AlignmentFailed: it is flagged, never given wrong positions.
"""
from __future__ import annotations

import numpy as np

from ..algorithms.asterism import MatchError, StarSet, apply_transform, match, transform_summary
from ..core.block import Block
from ..core.errors import AlignmentFailed
from ..image import Image, Sources

__all__ = ["AlignReferenceSources", "MAX_STARS"]

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


class AlignReferenceSources(Block):
    """Match each frame's detected stars to the reference and replace ``image.sources`` with the
    reference sources mapped onto the frame (same order, so star i is the same star everywhere).

    Parameters
    ----------
    reference : Image with ``sources`` (e.g. the calibrated, detected reference frame), Sources,
        or an (n, 2) array of x, y in pixels.
    n : maximum number of stars (brightest, well spread) used for the asterisms.
    tolerance : match radius in pixels.
    min_match : minimum number of stars that must agree with the transform.
    max_rms : maximum rms residual (px) of the fit on matched stars (default ``tolerance / 2``).
    max_scale : largest accepted scale change between the reference and a frame (and its inverse).
    allow_flip : accept mirrored fields (e.g. a German mount's meridian flip seen as a flip).
    max_stars : on a field with more stars, only the ``max_stars`` brightest unsaturated ones
        (saturated stars are never comparisons) and the target are measured on every frame;
        ``None`` measures every detected star. The runner caps the reference's star list with
        :meth:`measured` before the frames run, so indices (``--target N``, comparisons, the
        reference figure) refer to that list, the target last when it is not among them.
        Per-frame cost then stops growing with the number of stars (~0.1 ms per star and frame for
        centroids, 30 apertures and sky), while comparisons come from the brightest stars anyway.

    Sets ``image.transform`` (3x3, reference pixel -> frame pixel), ``image.dx``/``image.dy``
    (the shift of the reference frame's centre, px), ``image.sources`` and
    ``image.computed['alignment']`` (matched stars, rms, scale, rotation in degrees, flip).
    Sources mapped outside the frame get their ``edge`` flag.
    """

    requires = ("sources",)
    provides = ("transform", "dx", "dy", "sources")

    def __init__(self, reference=None, *, n: int = 30, tolerance: float = 2.0, min_match: int = 6,
                 max_rms: float | None = None, max_scale: float = 1.1, allow_flip: bool = True,
                 max_stars: int | None = MAX_STARS):
        if int(n) != n or n < 5:
            raise ValueError(f"n must be an integer >= 5, got {n!r}")
        if not tolerance > 0:
            raise ValueError(f"tolerance must be a positive number of pixels, got {tolerance!r}")
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
        self.tolerance = float(tolerance)
        self.min_match = int(min_match)
        self.max_rms = max_rms
        self.max_scale = float(max_scale)
        self.allow_flip = bool(allow_flip)
        self._ref = None
        self._set = None
        self._center = None
        if reference is not None:
            self.set_reference(reference)

    def set_reference(self, reference) -> None:
        """Use ``reference`` (Image with sources, Sources or (n, 2) array) from now on."""
        self.reference = reference
        self._ref = _reference_sources(reference)
        self._set = StarSet(self._ref.coords, n=self.n, min_distance=5.0 * self.tolerance)
        shape = getattr(reference, "shape", ())
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

    def run(self, image) -> None:
        if self._ref is None:
            raise ValueError("AlignReferenceSources has no reference: pass reference=<Image with sources>")
        detected = image.sources
        if detected is None or len(detected) < 3:
            raise AlignmentFailed(f"only {0 if detected is None else len(detected)} stars detected")
        try:
            m = match(self._set, detected.coords, n=self.n, tolerance=self.tolerance, min_match=self.min_match,
                      max_rms=self.max_rms, max_scale=self.max_scale, allow_flip=self.allow_flip)
        except MatchError as e:
            raise AlignmentFailed(f"no match with the reference: {e}") from None
        t = m.transform
        out = self._ref.copy()
        out.coords = apply_transform(t, self._ref.coords)
        out.peak = None
        out.saturated = np.zeros(len(out), bool)
        out.edge = self._outside(out.coords, image)
        shift = apply_transform(t, self._center[None])[0] - self._center
        image.sources = out
        image.transform = t
        image.dx, image.dy = float(shift[0]), float(shift[1])
        image.computed["alignment"] = {"matched": m.n_matched, "votes": m.votes, "rms": m.rms,
                                       **transform_summary(t)}

    @staticmethod
    def _outside(xy: np.ndarray, image) -> np.ndarray:
        """True for positions that are NaN or off the frame's pixel grid."""
        bad = ~np.isfinite(xy).all(axis=1)
        if len(image.shape) == 2:
            ny, nx = image.shape
            with np.errstate(invalid="ignore"):
                bad |= (xy[:, 0] < 0) | (xy[:, 0] > nx - 1) | (xy[:, 1] < 0) | (xy[:, 1] > ny - 1)
        return bad
