"""The per-frame quality flag registry shared by every producer.

Flags are bit masks (BANZAI/photutils style): a frame's ``flag`` column is the OR of the
reasons it was set aside or doubted. ``decode_flags`` turns a value back into names.
"""
from __future__ import annotations

from enum import IntFlag

__all__ = ["Flag", "FLAG_DESCRIPTIONS", "decode_flags"]


class Flag(IntFlag):
    """Per-frame quality bits written in the light-curve ``flag`` column."""

    NONE = 0
    UNREADABLE = 1
    NO_SOURCES = 2
    ALIGNMENT_FAILED = 4
    TARGET_SATURATED = 8
    TARGET_NEAR_EDGE = 16
    CENTROID_RAN_AWAY = 32
    OUTLIER_REJECTED = 64
    UNEXPECTED = 128
    TARGET_MASKED = 256
    NO_PSF = 512
    COSMIC_RAY = 1024


FLAG_DESCRIPTIONS = {
    Flag.UNREADABLE: "the file could not be read as a FITS image",
    Flag.NO_SOURCES: "no (or too few) stars were detected",
    Flag.ALIGNMENT_FAILED: "no method (asterisms, voted translation, one star, cross-correlation) placed the frame",
    Flag.TARGET_SATURATED: "a raw pixel of the target reached the saturation level",
    Flag.TARGET_NEAR_EDGE: "the target's chosen aperture leaves the frame (or the target does)",
    Flag.CENTROID_RAN_AWAY: (
        "the target centroid moved too far on a frame without a transform; the predicted position was kept"),
    Flag.OUTLIER_REJECTED: "rejected as an outlier by sigma clipping",
    Flag.UNEXPECTED: "an unexpected error (see the log)",
    Flag.TARGET_MASKED: "the target's chosen aperture overlaps masked pixels (dead columns, NaN)",
    Flag.NO_PSF: "the PSF could not be measured (no FWHM: smeared, doubled or blended star profiles)",
    Flag.COSMIC_RAY: "a cosmic-ray hit on the target's aperture could not be repaired",
}


def decode_flags(value: int) -> list[str]:
    """Names of the bits set in ``value`` (e.g. ``['NO_SOURCES']``)."""
    return [f.name for f in Flag if f and int(value) & f]
