"""The group's reference frame: chosen among the frames, processed by the reference chain.

The reference is the frame every other is aligned on and whose stars are measured: ``best`` takes
the sharpest of a sample spread over the group, ``first``/``middle``/N that frame or the nearest
usable one after it. On a dense field the frames are then detected only down to their brightest
stars (enough to align them).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..model.errors import ReduceError

__all__ = ["choose_reference", "quick_detection", "psf_like_reference", "psf_shape_of_reference", "fill_pointing"]

log = logging.getLogger("reduce.run")


MIN_REFERENCE_SOURCES = 3


# frames of denser fields are detected down to about this many stars: the alignment's asterisms
# use 30, the PSF 30 isolated ones. On HAT-P-32 (1,000 stars) 80 instead of 150 saves 1.1 ms of
# detection and 0.3 ms of alignment per frame; FWHM within 0.04 px, light curve unchanged (0.46 %)
QUICK_STARS = 80


def choose_reference(frames, ref_spec, blocks, loader):
    """(index, Image) of the reference frame, processed by the calibration/detection/psf blocks.

    ``first``/``middle``/index use that frame, or the nearest usable one after it; ``best`` takes
    the smallest fwhm among ``sample`` frames spread over the group.
    """
    n = len(frames)
    for block in blocks:
        block.setup(None)
    if ref_spec.method == "best":
        candidates = np.unique(np.linspace(0, n - 1, min(n, max(1, ref_spec.sample))).round().astype(int))
        scored = []
        for i in candidates:
            image = _prepare(blocks, frames[i], loader)
            if image is not None:
                scored.append((float(image.fwhm) / np.sqrt(min(len(image.sources), 50)), int(i), image))
        if scored:
            _, i, image = min(scored, key=lambda s: s[:2])
            return i, image
        order = range(n)
    else:
        start = {"first": 0, "middle": n // 2}.get(ref_spec.method, ref_spec.index)
        if start is None or not 0 <= start < n:
            raise ReduceError(f"reference frame {start} does not exist (the group has {n} frames)")
        order = list(range(start, n)) + list(range(start - 1, -1, -1))
    for i in order[:50]:
        image = _prepare(blocks, frames[i], loader)
        if image is not None:
            if i != order[0]:
                log.warning("reference frame %d unusable; using frame %d instead", order[0], i)
            return i, image
    raise ReduceError("no usable reference frame: no stars detected in the frames tried "
                      "(clouds? wrong detection threshold?)")


def _prepare(blocks, path, loader):
    """Load and run the reference chain on one frame; None when it fails or finds too little."""
    from ..core.sequence import run_frame

    try:
        image = run_frame(blocks, path, loader)
    except Exception as e:  # run_frame isolates block errors; a loader crash lands here
        log.warning("reference candidate %s failed: %s", path, e)
        return None
    if image.flags or image.sources is None or len(image.sources) < MIN_REFERENCE_SOURCES \
            or image.fwhm is None or not np.isfinite(image.fwhm):
        reasons = "; ".join(m for _, _, m in image.issues) or "too few sources or no fwhm"
        log.info("reference candidate %s rejected: %s", Path(str(path)).name, reasons)
        return None
    return image


def quick_detection(blocks, ref) -> None:
    """On a dense field, detect the frames only down to about their ``QUICK_STARS`` brightest stars.

    Frames need their own detections only to be aligned and to measure the PSF (the stars measured
    come from the reference), and sep's cost grows with every star: 20 ms for the 1,000 stars of a
    650x500 frame, 5 ms for 150, 4 ms for 80. The threshold is a quarter of the reference's ``QUICK_STARS``-th
    highest peak (in background sigmas), a margin for frames with 2x the FWHM or 1.5 mag of
    extinction; a frame where it finds too few stars is detected at the recipe's threshold.
    """
    from ..blocks.detection import PointSourceDetection

    s = ref.sources
    rms = ref.bkg_rms
    if s is None or s.peak is None or len(s) <= 2 * QUICK_STARS or not rms or not np.isfinite(rms):
        return
    snr = np.sort(np.asarray(s.peak, float)[np.isfinite(s.peak)])[::-1] / float(rms)
    if len(snr) <= QUICK_STARS:
        return
    quick = 0.25 * float(snr[QUICK_STARS])
    for block in blocks:
        if isinstance(block, PointSourceDetection) and quick > block.threshold:
            block.quick_threshold = quick
            log.info("dense field (%d stars on the reference): frames are detected above %.0f sigma "
                     "first (about their %d brightest stars), enough to align them", len(s), quick,
                     QUICK_STARS)


def psf_like_reference(blocks, ref) -> None:
    """The frames' Moffat2D fits start from the reference's PSF (its widths, angle and beta), and
    when that sits at the Gaussian limit (an undersampled night, e.g. a FWHM of ~2 px) try that
    limit first: from a generic beta = 3 the fit walks there in ~20 steps on every frame. On the
    HAT-P-32 night the Moffat fit goes from 4.4 to ~1.5 ms per frame, with the same FWHM."""
    from ..blocks.psf import Moffat2D

    params = getattr(ref, "psf_params", None)
    if not params or params.get("model") != "moffat":
        return
    for block in blocks:
        if isinstance(block, Moffat2D):
            block.like = dict(params)


def psf_shape_of_reference(blocks, ref) -> str:
    """Every frame is measured with the reference ePSF's shape (peaked, doughnut or flat, see
    :mod:`reduce.algorithms.psf_shape`), logged once: a doughnut or flat top gets no Moffat fit
    (its FWHM is the ePSF's equivalent width) and centre-of-mass centroids."""
    from ..blocks.psf import _PSFFit

    shape = ref.computed.get("psf_shape") or {}
    kind = shape.get("kind", "peaked")
    for block in blocks:
        if isinstance(block, _PSFFit):
            block.shape = kind
    if kind != "peaked":
        what = {"doughnut": "doughnuts (defocused, dark in the middle)", "flat": "flat-topped (defocused)"}[kind]
        log.info("the stars are %s: reference ePSF with a central dip of %.0f %%, plateau %.2f, brightest at "
                 "%.1f px, half the light within %.1f px; centre-of-mass centroids, apertures in units of its "
                 "equivalent FWHM %.1f px", what, 100 * shape["dip"], shape["plateau"], shape["r_peak"],
                 shape["r_half"], shape["fwhm_eq"])
    else:
        log.info("the stars are peaked (reference ePSF: FWHM %.2f px)", float(ref.fwhm))
    return kind


def fill_pointing(ref, group) -> None:
    """A reference frame without usable RA/DEC takes its group's (the other frames' pointing), for
    the automatic target and the BJD_TDB; the log says so."""
    if (ref.ra is None or ref.dec is None) and getattr(group, "ra", None) is not None:
        ref.ra, ref.dec = float(group.ra), float(group.dec)
        log.info("reference %s has no usable RA/DEC: using the group's pointing (%.5f, %+.5f)",
                 Path(str(ref.path)).name, ref.ra, ref.dec)
