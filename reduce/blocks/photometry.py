"""Aperture photometry at many radii, local annulus sky, and the GetFluxes collector.

Apertures are exact circle/pixel overlaps for every star and radius at once
(:func:`reduce.algorithms.apertures.circular_sums`: cumulative sums over the corners of one stamp
per star instead of one pass per radius); they agree with photutils
``aperture_photometry(method='exact')`` to ~1e-13 relative and cost ~2x less than sep's
``sum_circle(subpix=0)`` for 30 radii (benchmarks/bench_pipeline.py). An aperture that leaves
the frame or overlaps a masked pixel (``Image.mask``: raw-saturated, unilluminated, non-finite)
gives NaN for that star and radius, with the reason in ``image.aperture['flags']``: nothing partial
is summed. The annulus sky leaves pixels without data, those off the frame and those near other
sources out, and takes the median of the values its sigma clipping keeps (or their plane, or mean).
"""
from __future__ import annotations

import warnings
from typing import Literal

import numpy as np

from ..algorithms.apertures import COSMIC, EDGE, MASKED, SATURATED, annulus_stats, circular_sums, source_mask
from ..algorithms.centroids import cutouts
from ..core.block import Block
from ..model.flags import Flag
from ..model.errors import PSFFailed
from ..lightcurve.fluxes import Fluxes
from ..model.image import PixelFlag

__all__ = ["AperturePhotometry", "AnnulusBackground", "GetFluxes"]

_SCALES = ("fwhm", "pixels")


def _check_scale(scale) -> str:
    if scale not in _SCALES:
        raise ValueError(f"scale must be one of {_SCALES}, got {scale!r}")
    return scale


def _pixel_scale(image, scale: str) -> float:
    """1 for ``scale='pixels'``, else the frame's FWHM (px); a frame without one is rejected."""
    if scale == "pixels":
        return 1.0
    fwhm = image.fwhm
    if fwhm is None or not np.isfinite(fwhm) or fwhm <= 0:
        raise PSFFailed(f"radii are in FWHM units but the frame has no valid fwhm ({fwhm})")
    return float(fwhm)


class AperturePhotometry(Block):
    """Sums in exact circular apertures of every radius around every source.

    ``radii``: 1-D radii, in units of the frame FWHM (``scale='fwhm'``, default 30 values from 0.5
    to 4: beyond 4 FWHM a Moffat star (beta >= 2.5) holds at most 1 % of its light, so larger
    apertures add only sky noise) or in pixels (``scale='pixels'``, default 30 values from 1 to
    20 px). On a doughnut or flat-topped night (``scale='fwhm'``) they are squeezed to end at
    ``RING_GAP`` x the ring's 97 % radius (:func:`_ring_radii`): a ring has no wings.
    Sets ``image.aperture = {'radii': (n_radii,) px, 'fluxes': (n_sources, n_radii) raw sums (ADU),
    'areas': (n_sources, n_radii) areas (px^2), 'peak': (n_sources,) brightest pixel in a 5x5 box
    (ADU), 'flags': (n_sources, n_radii) uint8 bits (``reduce.algorithms.apertures`` EDGE, MASKED,
    SATURATED, COSMIC: an unrepaired cosmic-ray hit), 'edge': flags & EDGE, 'saturated': (n_sources,) a raw-saturated pixel in the 5x5
    box}``. Flagged apertures and sources with NaN positions get NaN sums and areas.
    """

    requires = ("sources", "fwhm")
    provides = ("aperture",)

    def __init__(self, *, radii: list[float] | None = None, scale: Literal["fwhm", "pixels"] = "fwhm"):
        self.scale = _check_scale(scale)
        if radii is None:
            r = np.linspace(0.5, 4.0, 30) if scale == "fwhm" else np.linspace(1.0, 20.0, 30)
        else:
            r = np.atleast_1d(np.asarray(radii, dtype=float))
            if r.ndim != 1 or r.size == 0 or not np.all(np.isfinite(r) & (r > 0)):
                raise ValueError(f"radii must be a non-empty list of positive numbers, got {radii!r}")
        self.radii = radii
        self._radii = r
        self.requires = ("sources",) if scale == "pixels" else ("sources", "fwhm")

    def run(self, image) -> None:
        radii = self._radii * _pixel_scale(image, self.scale)
        ring = _ring(image) if self.scale == "fwhm" else None
        if ring is not None:
            radii = _ring_radii(radii, RING_GAP * ring)
        xy = image.sources.coords if image.sources is not None else np.zeros((0, 2))
        image.ensure_mask()
        fluxes, areas, flags, peak = circular_sums(_float(image.data), xy, radii, image.mask)
        image.aperture = {"radii": radii, "fluxes": fluxes, "areas": areas, "flags": flags,
                          "edge": (flags & EDGE) != 0, "peak": peak,
                          "saturated": _core_saturated(image, xy, flags, radii)}


def _ring_radii(radii: np.ndarray, top: float) -> np.ndarray:
    """A ring's radii: from the smallest of ``radii`` to ``top`` (where its sky annulus starts),
    spaced as they were; 4 FWHM (8 half-light radii) of a ring reach far past its light, into
    its neighbours' on a crowded frame (an 18 px ring with 40 stars on 300x300: a 51 px aperture
    chosen, 3.1x the floor)."""
    lo, hi = float(radii.min()), float(radii.max())
    if not top < hi or not hi > lo:
        return radii
    return lo + (radii - lo) * (max(top, lo) - lo) / (hi - lo)


def _core_saturated(image, xy: np.ndarray, flags: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """True for positions with a raw-saturated pixel (``Image.mask``) in their 5x5 box (looked
    for only around stars with an aperture on saturated pixels when the largest radius covers
    the box, i.e. reaches 4.3 px)."""
    out = np.zeros(len(xy), bool)
    if not (image.mask_bits or 0) & PixelFlag.SATURATED or len(xy) == 0:
        return out
    near = np.arange(len(xy)) if radii.max() < 4.3 else np.flatnonzero((flags & SATURATED).any(axis=1))
    if len(near):
        box, _, _ = cutouts(image.mask, xy[near], 5, dtype=np.uint8, fill=0)
        out[near] = ((box & np.uint8(PixelFlag.SATURATED)) != 0).any(axis=(1, 2))
    return out


def _float(data: np.ndarray) -> np.ndarray:
    """``data`` as a native-endian float array (no copy when it already is one)."""
    data = np.asarray(data)
    if data.dtype.kind != "f" or not data.dtype.isnative:
        data = data.astype(np.float64)
    return data


#: outer radius (px) from which ``statistic: auto`` takes the plane: doughnut nights (8-12 px rings,
#: annuli 40-70 px out) measured 1.09x their floor with it, 1.11x with the median; focused nights
#: (annuli 10-35 px) are better with the median (a clouded night: 0.91x, 1.47x with the plane)
PLANE_FROM_PX = 40.0

#: a ring's (doughnut or flat-topped star's) light ends near ``r_outer`` (97 % of it, from the
#: ePSF, whose 21 px stamp cuts a 25 px ring's: 10.5 px for ~13): its apertures reach and its sky
#: annulus starts ``RING_GAP`` x that out (+1 px), the annulus holds ``RING_AREA`` x the pixels of
#: that disc, and its neighbours are left out as far: FWHM multiples (5-8 x 2 r_half) put a 25 px
#: ring's annulus 90-145 px out, off a small frame and under its neighbours' rings
RING_GAP = 2.0
RING_AREA = 20.0


def ring_annulus(r_outer: float) -> tuple[float, float]:
    """(inner, outer) px of the sky annulus of a ring whose light ends near ``r_outer`` px."""
    inner = RING_GAP * float(r_outer) + 1.0
    return inner, float(np.sqrt(inner * inner + RING_AREA * float(r_outer) ** 2))


def _ring(image) -> float | None:
    """``r_outer`` (px) of the frame's ePSF on a doughnut or flat-topped night, else None."""
    if image.computed.get("psf_kind") not in ("doughnut", "flat"):
        return None
    r = (image.computed.get("psf_shape") or {}).get("r_outer")
    return float(r) if r is not None and np.isfinite(r) and r > 0 else None


class AnnulusBackground(Block):
    """Local sky per star from the pixels whose centres lie in an annulus, neighbours left out.

    ``inner``/``outer`` radii in FWHM units (``scale='fwhm'``) or pixels; on a doughnut or
    flat-topped night (``scale='fwhm'``) the ring's own (:func:`ring_annulus`). Pixels within
    ``neighbours`` (same units, at most ``inner``; 0: none) of any other source, as far as its
    light stands above the noise (:func:`neighbour_radii`), are left out, then the values are
    sigma-clipped at ``sigma`` (iterated to convergence, like astropy ``sigma_clipped_stats``) and
    ``statistic`` gives the sky: ``'median'`` their median, ``'plane'`` the least-squares plane
    through them at the star (a sky gradient across an annulus cut by a neighbour does not bias
    it, but it extrapolates where the neighbours cut most of an annulus; ~0.8 ms more per frame
    of 100 stars), ``'mean'`` their mean; ``'auto'`` (default) the plane for annuli reaching
    ``PLANE_FROM_PX`` or more (defocused and doughnut stars: the annulus spans the sky's
    gradient), else the median. Why the neighbours go: a
    neighbour's light left in the annulus biases a clipped estimator by an amount that follows the
    sky noise, not the star (clouds double the one and cut the other). An annulus cut by
    the frame edge or by pixels without data (``Image.mask``: unilluminated, NaN) uses the pixels
    left; a star left with fewer than ``min_pixels`` once neighbours are out keeps them, and with
    fewer than ``min_pixels`` still gets NaN. Sets ``image.annulus = {'median' (the sky), 'std',
    'error' (std / sqrt(npix)), 'area' (npix kept), 'inner', 'outer' (px)}``, each per star (n,).
    """

    requires = ("sources", "fwhm")
    provides = ("annulus",)

    def __init__(self, *, inner: float = 5.0, outer: float = 8.0, scale: Literal["fwhm", "pixels"] = "fwhm",
                 sigma: float = 3.0, min_pixels: int = 20, neighbours: float = 4.0,
                 statistic: Literal["auto", "plane", "mean", "median"] = "auto"):
        if not (np.isfinite(inner) and np.isfinite(outer) and inner >= 0 and outer > 0):
            raise ValueError(f"annulus radii must be finite and non-negative, got inner={inner!r}, outer={outer!r}")
        if not inner < outer:
            raise ValueError(f"annulus inner radius ({inner}) must be smaller than the outer one ({outer}); "
                             "were they swapped?")
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma!r}")
        if int(min_pixels) != min_pixels or min_pixels < 1:
            raise ValueError(f"min_pixels must be a positive integer, got {min_pixels!r}")
        if not (np.isfinite(neighbours) and neighbours >= 0):
            raise ValueError(f"neighbours must be a finite radius >= 0, got {neighbours!r}")
        if statistic not in ("auto", "plane", "mean", "median"):
            raise ValueError(f"statistic must be 'auto', 'plane', 'mean' or 'median', got {statistic!r}")
        self.min_pixels = int(min_pixels)
        self.inner = float(inner)
        self.outer = float(outer)
        self.scale = _check_scale(scale)
        self.sigma = float(sigma)
        self.neighbours = min(float(neighbours), self.inner)  # a star's own annulus stays whole
        self.statistic = statistic
        self.requires = ("sources",) if scale == "pixels" else ("sources", "fwhm")
        self.field = None  # every source of the reference (its pixels), set by the runner
        self._field_masks: dict = {}
        self._implied = None  # without it: the measured stars mapped back to the reference

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_field_masks"] = {}  # built again where the frames are measured
        return state

    def setup(self, context=None) -> None:
        """Forget the masks and the field implied by an earlier run (another night, another
        reference)."""
        self._field_masks, self._implied = {}, None

    def run(self, image) -> None:
        k = _pixel_scale(image, self.scale)
        inner, outer = self.inner * k, self.outer * k
        ring = _ring(image) if self.scale == "fwhm" else None  # a ring's light has no FWHM wings
        if ring is not None:
            inner, outer = ring_annulus(ring)
        xy = image.sources.coords if image.sources is not None else np.zeros((0, 2))
        # pixels without data are left out; a saturated core is left to the clipping (the
        # brightest values), which spares gathering the mask on frames with saturated stars only
        image.ensure_mask()
        mask = image.mask if image.mask_bits & (PixelFlag.no_data() | PixelFlag.COSMIC) else None
        data = _float(image.data)
        near = self._neighbour_mask(image, xy, self.neighbours * k, data.shape,
                                    None if ring is None else RING_GAP * ring)
        med, std, npix = self._sky(data, xy, inner, outer, _either(mask, near))
        few = npix < self.min_pixels
        if self.neighbours and few.any() and len(xy) > 1:  # crowded: the neighbours' pixels back in
            med[few], std[few], npix[few] = self._sky(data, xy[few], inner, outer, mask)
            few = npix < self.min_pixels
        if few.any():
            med, std = np.where(few, np.nan, med), np.where(few, np.nan, std)
        with np.errstate(invalid="ignore", divide="ignore"):
            err = std / np.sqrt(npix)
        image.annulus = {"median": med, "std": std, "error": err, "area": npix.astype(float),
                         "inner": inner, "outer": outer}

    def _neighbour_mask(self, image, xy, radius: float, shape, ring: float | None = None
                        ) -> np.ndarray | None:
        """Pixels near a source, as far as its light stands above the noise and at most
        ``radius`` (:func:`neighbour_radii`): of every source the reference detected (``field``,
        mapped through the frame's transform), so that a star's sky does not depend on which
        others are measured; of the measured stars, at ``radius``, when no field or transform is
        known. The mask is drawn for the frame's rotation and scale rounded so that no source
        moves by more than a pixel, once per such step and half-pixel FWHM step, and moved by the
        frame's rounded shift (a night's slow drift and rotation reuse a few masks). ``ring``: every
        source out to this radius (px, rounded up to 0.5) instead, a ring's light having no wings."""
        if radius <= 0:
            return None
        if ring is not None:
            radius = np.ceil(ring * 2.0) / 2.0
        t = getattr(image, "transform", None)
        field = self._field(xy, t)
        if field is None or len(field) < 2:
            return source_mask(shape, xy, radius) if len(xy) > 1 else None
        t, fwhm = np.asarray(t, float), radius / self.neighbours
        step = np.ceil(fwhm * 2.0) / 2.0  # a few FWHM per night: rounded up (the wing model is rough)
        radii = neighbour_radii(field[:, 2], step, self.neighbours) if ring is None else \
            np.full(len(field), radius)
        size = 0.5 * max(shape)  # linear part in steps of 1 / size: <= 1 px over the frame
        turn = np.rint((t[:2, :2] - np.eye(2)) * size)
        key = (tuple(shape), step, ring is not None, tuple(turn.ravel().astype(int)))
        if key not in self._field_masks:
            if len(self._field_masks) >= 32:
                self._field_masks.clear()
            linear = np.eye(2) + turn / size
            self._field_masks[key] = source_mask(shape, field[:, :2] @ linear.T, radii)
        shift = np.rint(t[:2, 2])
        return _shifted(self._field_masks[key], int(shift[0]), int(shift[1]))

    def _field(self, xy, t) -> np.ndarray | None:
        """The sources whose pixels are left out, in the reference's pixels: the runner's
        ``field``; else (a Sequence built by hand) the measured stars of the first frame with a
        transform, mapped back through it, at the widest radius, so that their masks too are
        drawn once and moved (None without a transform)."""
        if t is None:
            return None
        if self.field is not None:
            return self.field
        if self._implied is None or len(self._implied) != len(xy):
            t = np.asarray(t, float)
            try:
                ref = (np.asarray(xy, float) - t[:2, 2]) @ np.linalg.inv(t[:2, :2]).T
            except np.linalg.LinAlgError:  # a degenerate transform: no field to map back
                return None
            self._implied = np.column_stack([ref, np.full(len(ref), np.inf)])
        return self._implied

    def _sky(self, data, xy, inner, outer, mask):
        """(sky, std, npix) of each star's annulus, pixels flagged in ``mask`` left out."""
        statistic = self.statistic
        if statistic == "auto":  # a wide annulus spans the sky's gradient: the plane takes it at the star
            statistic = "plane" if outer >= PLANE_FROM_PX else "median"
        return annulus_stats(data, xy, inner, outer, self.sigma, mask=mask, statistic=statistic)


#: Moffat power of the wing assumed for the neighbours' masks (2.5: wider than most seeing)
WING_BETA = 2.5


def neighbour_radii(height, fwhm: float, most: float) -> np.ndarray:
    """Radius (px) out to which a source ``height`` background sigmas high at its peak stands
    above 1 sigma, for a Moffat wing of power :data:`WING_BETA` and this ``fwhm``, at most
    ``most`` FWHM: ~1 FWHM for a 10-sigma source, 3.4 FWHM for a 1,000-sigma one."""
    alpha = fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / WING_BETA) - 1.0))
    h = np.maximum(np.asarray(height, float), 1.0)
    with np.errstate(over="ignore", invalid="ignore"):
        r = alpha * np.sqrt(h ** (1.0 / WING_BETA) - 1.0)
    return np.minimum(np.nan_to_num(r, nan=most * fwhm, posinf=most * fwhm), most * fwhm)


def _either(mask, near):
    """Pixels flagged in ``mask`` or in ``near`` (either may be None)."""
    if near is None or mask is None:
        return near if mask is None else mask
    return near | (mask != 0)


def _shifted(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``mask`` moved by (``dx``, ``dy``) whole pixels, zeros where it enters."""
    out = np.zeros_like(mask)
    ny, nx = mask.shape
    if abs(dx) >= nx or abs(dy) >= ny:
        return out
    out[max(dy, 0):ny + min(dy, 0), max(dx, 0):nx + min(dx, 0)] = \
        mask[max(-dy, 0):ny + min(-dy, 0), max(-dx, 0):nx + min(-dx, 0)]
    return out


def _num(v) -> float:
    """A float, NaN for None or non-numbers."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return np.nan


class GetFluxes(Block):
    """Collect every frame's photometry into a :class:`~reduce.lightcurve.fluxes.Fluxes` (``self.fluxes``).

    Per frame: time (``image.jd``), background-subtracted fluxes ``sum - median * area`` for every
    star and radius, their 1-sigma errors from the CCD equation in ADU::

        var = (F g + A (S g + RN^2) + A^2 (sigma_S g)^2) / g^2

    (F flux, A aperture area, S annulus sky above the bias ``pedestal`` (ADU still in the
    pixels when no bias frame or overscan took it off: not photons), sigma_S its standard error,
    all ADU; gain g in e-/ADU and read noise RN in e- from the image, 1 and 0 when unknown; F and S
    clipped at 0: the sky's photon noise grows the error of every pixel of a bright, e.g.
    twilight, sky),
    the frame's fwhm, sky, airmass, dx, dy, exposure, flags, file, and per star x, y, peak,
    annulus sky ``bkg``, ``saturated`` (a raw-saturated pixel at the star, this frame or its
    reference detection) and ``aperture_flags`` (n_apertures, n_stars, n_frames; the
    ``reduce.algorithms.apertures`` bits saying why an aperture is NaN). Frames rejected upstream
    (no photometry) get NaN rows with their flags. Without AnnulusBackground in the chain, sums
    are not sky-subtracted.

    Flags the frame TARGET_SATURATED when a raw-saturated pixel is at the target, and, when no
    aperture of the target could be measured, TARGET_NEAR_EDGE (the smallest leaves the frame),
    TARGET_MASKED (it overlaps masked pixels) or COSMIC_RAY (an unrepaired cosmic-ray hit). Which aperture counts is decided later, by the
    differential photometry (``Fluxes.autodiff``), which flags the frames where the chosen one is NaN.
    """

    collector = True

    def __init__(self, *, target: int = 0, pedestal: float = 0.0):
        if int(target) != target or target < 0:
            raise ValueError(f"target must be a non-negative star index, got {target!r}")
        self.target = int(target)
        self.pedestal = float(pedestal)
        self._rows: list[dict] = []
        self.fluxes: Fluxes | None = None

    def setup(self, context=None) -> None:
        """Start a new collection (a Sequence may be run more than once)."""
        self._rows = []
        self.fluxes = None

    def run(self, image) -> None:
        row = {"time": _num(image.jd), "file": image.path or "", "fwhm": _num(image.fwhm), "sky": _num(image.bkg),
               "airmass": _num(image.airmass), "dx": _num(image.dx), "dy": _num(image.dy),
               "exposure": _num(image.exposure)}
        ap = image.aperture
        if ap is not None and image.sources is not None and len(ap.get("fluxes", ())) == len(image.sources):
            row.update(self._measure(image, ap, self.pedestal))
            self._flag_target(image, row)
        row["flags"] = int(image.flags)
        self._rows.append(row)

    @staticmethod
    def _measure(image, ap, pedestal: float = 0.0) -> dict:
        """Sky-subtracted fluxes, CCD-equation errors and per-star values of one frame."""
        sums, area = np.asarray(ap["fluxes"], float), np.asarray(ap["areas"], float)
        n = len(sums)
        an = image.annulus
        if an is not None and len(an["median"]) == n:
            sky, sky_err = np.asarray(an["median"], float), np.asarray(an["error"], float)
        else:
            sky, sky_err = np.zeros(n), np.zeros(n)
        gain = _num(image.gain)
        gain = gain if np.isfinite(gain) and gain > 0 else 1.0
        rn = _num(image.read_noise)
        rn = rn if np.isfinite(rn) and rn >= 0 else 0.0
        flux = sums - sky[:, None] * area
        photons = np.clip(sky - pedestal, 0, None)  # the sky above the bias level
        var = (np.clip(flux, 0, None) * gain + area * (photons[:, None] * gain + rn ** 2)
               + (area * sky_err[:, None] * gain) ** 2) / gain ** 2
        flags = ap.get("flags")
        if flags is None:  # an aperture dict made by hand: its edge bits, NaN where nothing was summed
            flags = np.where(np.asarray(ap.get("edge", np.zeros(sums.shape, bool)), bool), EDGE, 0)
            flags = np.where(np.isfinite(sums) | (flags != 0), flags, MASKED)
        saturated = np.asarray(ap.get("saturated", np.zeros(n, bool)), bool)
        return {"flux": flux, "error": np.sqrt(var), "radii": np.asarray(ap["radii"], float),
                "x": image.sources.x.copy(), "y": image.sources.y.copy(),
                "peak": np.asarray(ap.get("peak", np.full(n, np.nan)), float), "bkg": sky,
                "aperture_flags": np.asarray(flags, np.uint8), "saturated_here": saturated,
                "saturated": saturated | image.sources.saturated}

    def _flag_target(self, image, row) -> None:
        t = self.target
        if t >= len(row["flux"]):
            return
        saturated = row["saturated_here"][t]
        if saturated:
            image.flag(Flag.TARGET_SATURATED, "a raw pixel of the target reached the saturation level",
                       self.name)
        flags = row["aperture_flags"][t]
        if (flags == 0).any():
            return
        r = row["radii"][0]
        smallest = f"even the smallest target aperture (r={r:.1f} px)"
        if flags[0] & EDGE:
            image.flag(Flag.TARGET_NEAR_EDGE, f"{smallest} leaves the frame", self.name)
        elif flags[0] & MASKED:
            image.flag(Flag.TARGET_MASKED, f"{smallest} overlaps masked pixels (unilluminated or NaN)",
                       self.name)
        elif flags[0] & COSMIC:
            image.flag(Flag.COSMIC_RAY, f"{smallest} overlaps a cosmic-ray hit that could not be repaired",
                       self.name)
        elif not saturated:
            image.flag(Flag.TARGET_SATURATED, f"{smallest} overlaps saturated pixels", self.name)

    def finish(self) -> None:
        """Assemble the collected rows into ``self.fluxes`` (NaN for frames without photometry)."""
        rows = self._rows
        shapes = [r["flux"].shape for r in rows if "flux" in r]
        n_star, n_ap = max(set(shapes), key=shapes.count) if shapes else (0, 0)
        n = len(rows)
        flux = np.full((n_ap, n_star, n), np.nan)
        error = np.full_like(flux, np.nan)
        radii = np.full((n_ap, n), np.nan)
        star = {k: np.full((n_star, n), np.nan) for k in ("x", "y", "peak", "bkg")}
        saturated = np.zeros((n_star, n), bool)
        ap_flags = np.zeros((n_ap, n_star, n), np.uint8)
        flags = np.array([r["flags"] for r in rows], dtype=np.int64)
        for i, r in enumerate(rows):
            if "flux" not in r:
                continue
            if r["flux"].shape != (n_star, n_ap):
                flags[i] |= int(Flag.UNEXPECTED)  # a different star list: not comparable with the others
                continue
            flux[:, :, i], error[:, :, i], radii[:, i] = r["flux"].T, r["error"].T, r["radii"]
            for k in star:
                star[k][:, i] = r[k]
            saturated[:, i], ap_flags[:, :, i] = r["saturated"], r["aperture_flags"].T
        data = {k: np.array([r[k] for r in rows], dtype=float)
                for k in ("fwhm", "sky", "airmass", "dx", "dy", "exposure")}
        data.update(star)
        data["saturated"], data["aperture_flags"] = saturated, ap_flags
        data["radii"] = radii
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: no frame measured
            apertures = np.nanmedian(radii, axis=1) if n else np.full(n_ap, np.nan)
        self.fluxes = Fluxes(np.array([r["time"] for r in rows], dtype=float), flux, error, apertures,
                             target=self.target, data=data, flags=flags,
                             files=np.array([r["file"] for r in rows], dtype=object))
