"""The CosmicRays block: find and repair cosmic-ray hits around the stars that are measured."""
from __future__ import annotations

import numpy as np

from ..algorithms.centroids import cutouts
from ..algorithms.cosmics import _isolated, core_hits, find_hits, mirror_hits, mirror_values, repair_hits
from ..core.block import Block
from .bayer import grid_scale
from ..model.image import PixelFlag

__all__ = ["CosmicRays", "reference_without_hits"]


class CosmicRays(Block):
    """Cosmic-ray hits within ``radius`` FWHM of every star: the default 4.5 covers the apertures
    (4 FWHM in the default recipe) and the 5x5 box read for saturation; the sky annuli leave
    hits out by their 3-sigma clipping (``radius: 8`` searches them too, ~0.8 ms more per
    650x500 frame, the same HAT-P-32 light curve).

    On stars of ``mirror_fwhm`` px FWHM or more (a bilinear reflection is accurate there), a
    pixel within ``core`` FWHM of a star that stands above its point reflection through the
    star's centre by more than ``mirror`` times the reflection's height (grown with the light a
    centre 0.25 px off moves) is a hit too (:func:`~reduce.algorithms.cosmics.mirror_hits`):
    beside the peak, a track's pixels and the star's own bright pixels are the upper values of
    the 3x3 box, and a track of 4x the star's level was missed (a target frame 59.7 sigma off on a
    simulated 60-hit night). Core hits are repaired with the reflection where it holds no hit,
    so a target hit there no longer loses the frame.

    A hit is a pixel sharper than the frame's PSF allows (:mod:`reduce.algorithms.cosmics`:
    ``sigma`` noise sigmas plus the star-shape limit above the 6th value of its 3x3 box). Hits are repaired
    with the median of their non-hit neighbours, except those within ``core`` FWHM of a star
    where it holds light above the noise (the median is wrong on a star's peak): those are
    masked (``PixelFlag.COSMIC``), so an aperture over them is NaN (a comparison then leaves
    that frame's ensemble; the target's frame is flagged ``COSMIC_RAY``). A hit is never
    saturation of a star: its pixels lose the ``SATURATED`` bit. On a colour sensor's 2x2
    superpixels (BayerBin leaves the calibrated mosaic in ``computed['cfa_mosaic']``) the cores
    are first searched on the mosaic's 4 colour sub-lattices (:func:`_mosaic_hits`), and beyond
    the cores the superpixels' test takes a monochrome star's limit. Sets
    ``image.computed['cosmics'] = {'hits', 'repaired', 'masked'}`` (pixel counts).
    """

    requires = ("sources", "fwhm")
    modifies_data = True

    def __init__(self, *, radius: float = 4.5, core: float = 1.5, sigma: float = 5.0, mirror: float = 0.5,
                 mirror_fwhm: float = 3.0):
        if not (np.isfinite(radius) and radius > 0 and np.isfinite(core) and core >= 0):
            raise ValueError(f"radius must be > 0 and core >= 0 (FWHM units), got {radius!r}, {core!r}")
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma!r}")
        if not (np.isfinite(mirror) and mirror >= 0):
            raise ValueError(f"mirror must be >= 0 (0: off), got {mirror!r}")
        self.radius, self.core, self.sigma, self.mirror = float(radius), float(core), float(sigma), float(mirror)
        self.mirror_fwhm = float(mirror_fwhm)

    def run(self, image) -> None:
        image.computed["cosmics"] = {"hits": 0, "repaired": 0, "masked": 0}
        mosaic = image.computed.pop("cfa_mosaic", None)
        fwhm = float(image.fwhm or np.nan)
        if image.sources is None or len(image.sources) == 0 or not np.isfinite(fwhm):
            return
        sky, noise = _sky(image)
        xy = image.sources.coords
        if mosaic is not None:  # a colour sensor's superpixels: first on its raw colour lattices
            _mosaic_hits(self, image, mosaic, xy, fwhm)
        mirror = self.mirror > 0 and self.core > 0 and fwhm >= self.mirror_fwhm  # a reflection to read
        hits, bad = self._clean(image.data, xy, fwhm, sky, noise, float(image.gain or 1.0),
                                grid_scale(image), mirror)
        if len(hits) == 0:
            return
        _mark(image, hits, bad)
        image.computed["cosmics"] = {"hits": int(len(hits)), "repaired": int((~bad).sum()),
                                     "masked": int(bad.sum())}

    def _clean(self, data, xy, fwhm, sky, noise, gain, binning, mirror, isolated=False):
        """(hits, masked) of ``data`` (flat indices; True: left as it was, to be masked), repaired
        in place: the hits of :func:`find_hits` (none when ``binning`` is None), and with
        ``mirror`` those of :func:`mirror_hits`."""
        hits = np.zeros(0, np.intp) if binning is None else find_hits(
            data, xy, self.radius * fwhm, sky=sky, noise=noise, fwhm=fwhm, gain=gain,
            sigma=self.sigma, binning=binning, core=self.core * fwhm)
        core = self.core * fwhm
        if mirror:  # beside a star's peak the 3x3 test is blind; the star's point symmetry is not
            more = mirror_hits(data, xy, core, sky=sky, noise=noise, gain=gain,
                               sigma=self.sigma, excess=self.mirror, fwhm=fwhm, isolated=isolated)
            if len(more):
                hits = np.union1d(hits, more)
        if len(hits) == 0:
            return hits, np.zeros(0, bool)
        hy, hx = np.divmod(hits, data.shape[1])
        before = data[hy, hx].astype(np.float64)
        value = repair_hits(data, hits)
        # in a star's core, where the repair stands on the star's light, the median is wrong:
        # the star's light at the point reflection through its centre replaces it, else masked
        lit = np.isnan(value) | (value - sky > self.sigma * noise)
        bad = lit & core_hits(hits, data.shape, xy, core)
        if bad.any() and mirror:
            mv = mirror_values(data, hits, xy, core)
            fix = bad & np.isfinite(mv)
            data[hy[fix], hx[fix]] = (np.rint(mv[fix]) if data.dtype.kind in "iu" else mv[fix]).astype(data.dtype)
            bad &= ~fix
        if bad.any():
            data[hy[bad], hx[bad]] = before[bad].astype(data.dtype)
        return hits, bad


def _mosaic_hits(block, image, mosaic, xy, fwhm: float) -> None:
    """Hits in the stars' cores on a colour sensor's raw mosaic, found on each of its 4 colour
    sub-lattices (one colour: a star is point-symmetric there) by the reflection test of
    :func:`~reduce.algorithms.cosmics.mirror_hits` on the superpixels' grid; each superpixel
    holding a repaired pixel changes by the repair (weighed as BayerBin weighs that pixel), one
    holding a pixel left as it was is masked (COSMIC). On the superpixels themselves a one-pixel
    hit beside an undersampled core (1.6 superpixels FWHM) is diluted by the cell's 3 other
    pixels and the star's peak: measured, +21,000 ADU 1.5 raw px from a target's centre added
    16 % to its flux unseen. Only stamps around the isolated stars are read (no copy of the frame)."""
    raw, px, py, weights = mosaic
    data = image.data
    ny, nx = data.shape
    core = block.core * fwhm
    if not core > 0:
        return
    xy = np.asarray(xy, float)
    xy = xy[np.isfinite(xy).all(axis=1)]
    xy = xy[_isolated(xy, 2.0 * core)]
    if len(xy) == 0:
        return
    gain = float(image.gain or 1.0)
    n, h = len(xy), int(np.ceil(core)) + 3
    size = 2 * h + 1
    # one raw stamp per star, on whole cells: its 4 colour sub-lattices are its [oy::2, ox::2]
    i0 = np.floor(xy).astype(np.int64) - h  # the stamps' first superpixel (x, y)
    at = (2 * i0 + [px, py] + size).astype(float)
    stamps, _, _ = cutouts(raw, at, 2 * size, dtype=np.float32)
    blocks = np.concatenate([stamps[:, oy::2, ox::2] for oy in (0, 1) for ox in (0, 1)])
    ring = np.ones((size, size), bool)
    ring[2:-2, 2:-2] = False
    edge = blocks[:, ring].reshape(4, -1)  # each colour's sky and noise, from the stamps' borders
    sky, noise = np.zeros(4), 0.0
    for k, e in enumerate(edge):
        e = e[np.isfinite(e)]
        if e.size < 8:
            return
        sky[k] = np.median(e)
        noise = max(noise, 1.4826 * float(np.median(np.abs(e - sky[k]))))
    if not noise > 0:
        return
    canvas = (blocks - np.repeat(sky, n)[:, None, None]).reshape(-1, size)  # one above the other
    shift = [0.25 - 0.5 * (c % 2) for c in range(4)], [0.25 - 0.5 * (c // 2) for c in range(4)]
    local = np.concatenate([xy - i0 + [shift[0][c], shift[1][c]] for c in range(4)])
    local[:, 1] += np.arange(4 * n) * size
    before = canvas.copy()
    hits, bad = block._clean(canvas, local, fwhm, 0.0, noise, gain, None, True, isolated=True)
    if len(hits) == 0:
        return
    r, c = np.divmod(hits, size)
    b = r // size
    star, colour = b % n, b // n
    gx, gy = i0[star, 0] + c, i0[star, 1] + r % size
    keep = np.isfinite(before[r, c]) & (gy >= 0) & (gy < ny) & (gx >= 0) & (gx < nx)
    hot = image.computed.get("hot_pixel_index")
    if hot is not None:  # repaired on the superpixels already
        keep &= ~np.isin(gy * nx + gx, hot)
    # a raw pixel in two stamps (stars 2 cores apart) counts once
    pixel = np.where(keep, ((gy * nx + gx) * 4 + colour), -1)
    _, first = np.unique(pixel, return_index=True)
    first = first[pixel[first] >= 0]
    if len(first) == 0:
        return
    w = np.ones(4) if weights is None else np.asarray(weights, float).ravel()
    delta = w[colour[first]] * (canvas[r[first], c[first]] - before[r[first], c[first]])
    np.add.at(data, (gy[first], gx[first]), delta.astype(data.dtype))
    flat = gy[first] * nx + gx[first]
    found = np.unique(flat)
    # a hit is no saturation; one left as it was masks its superpixel (COSMIC)
    _mark(image, found, np.isin(found, flat[bad[first]]))


def _sky(image) -> tuple[float, float]:
    """The frame's sky level and per-pixel noise (ADU): the detection's, else the data's."""
    sky, rms = image.bkg, image.bkg_rms
    if sky is not None and rms is not None and np.isfinite(sky) and np.isfinite(rms) and rms > 0:
        return float(sky), float(rms)
    sample = np.asarray(image.data, float).ravel()[::7]
    sample = sample[np.isfinite(sample)]
    med = float(np.median(sample)) if sample.size else np.nan
    mad = float(np.median(np.abs(sample - med))) if sample.size else np.nan
    return med, 1.4826 * mad


def _mark(image, hits: np.ndarray, bad: np.ndarray) -> None:
    """Hit pixels lose the SATURATED bit; the unrepaired ones get COSMIC (the frame's own mask,
    changed in place; none is made when no bit changes)."""
    image.ensure_mask()
    mask = image.mask
    if mask is None:
        if not bad.any():
            return
        mask = np.zeros(image.shape, np.uint8)
    flat = mask.reshape(-1)
    sat = np.uint8(PixelFlag.SATURATED)
    cleared = (flat[hits] & sat).any()
    if cleared:
        flat[hits] &= ~sat
    if bad.any():
        flat[hits[bad]] |= np.uint8(PixelFlag.COSMIC)
    if cleared or mask is not image.mask:
        image.set_mask(mask)
    elif bad.any():
        image.mask_bits = int(image.mask_bits or 0) | int(PixelFlag.COSMIC)


def reference_without_hits(image, *, sigma: float = 5.0) -> int:
    """Drop the reference's sources that are cosmic-ray hits (hits hold most of the light of
    their 3x3 box above the local sky), and clear ``saturated`` where every saturated pixel of a
    source's 5x5 box is a hit; returns the number dropped. The stars measured all night come from
    this list: a hit must neither stand in for a star nor bar one from the comparisons."""
    src, fwhm = image.sources, float(image.fwhm or np.nan)
    if src is None or len(src) == 0 or not np.isfinite(fwhm):
        return 0
    sky, noise = _sky(image)
    hits = find_hits(image.data, src.coords, max(2.0, fwhm), sky=sky, noise=noise, fwhm=fwhm,
                     gain=float(image.gain or 1.0), sigma=sigma, binning=grid_scale(image))
    if len(hits) == 0:
        return 0
    hit_map = np.zeros(image.shape, np.uint8)
    hit_map.ravel()[hits] = 1
    near = np.flatnonzero(cutouts(hit_map, src.coords, 3, dtype=np.uint8, fill=0)[0].any(axis=(1, 2)))
    repaired = np.array(image.data, dtype=np.float32)
    repair_hits(repaired, hits)
    keep = np.ones(len(src), bool)
    if len(near):
        before = cutouts(np.asarray(image.data, np.float32), src.coords[near], 5, dtype=np.float32)[0]
        after = cutouts(repaired, src.coords[near], 5, dtype=np.float32)[0]
        ring = np.ones((5, 5), bool)
        ring[1:4, 1:4] = False
        local = np.nanmedian(after[:, ring], axis=1)
        light = np.nansum(after[:, 1:4, 1:4], axis=(1, 2)) - 9 * local
        hit = np.nansum(before[:, 1:4, 1:4] - after[:, 1:4, 1:4], axis=(1, 2))
        keep[near[hit > light]] = False
    sat = src.saturated.copy()
    if sat.any() and image.mask is not None:
        which = np.flatnonzero(sat)
        m = cutouts(image.mask, src.coords[which], 5, dtype=np.uint8, fill=0)[0]
        h = cutouts(hit_map, src.coords[which], 5, dtype=np.uint8, fill=0)[0]
        sat[which] = (((m & np.uint8(PixelFlag.SATURATED)) != 0) & (h == 0)).any(axis=(1, 2))
    src.saturated = sat
    image.sources = src[np.flatnonzero(keep)]
    return int((~keep).sum())
