"""The per-frame data model: pixels, header, metadata, sources and measurements.

``Image`` is slotted, so a typo such as ``image.fhwm = 3`` raises instead of silently creating a
new attribute (a prose pitfall). Blocks read and write these fields; nothing here processes data.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntFlag
from typing import Any

import numpy as np

from .flags import Flag

__all__ = ["Image", "Sources", "PixelFlag", "SATURATION_FRACTION", "raw_mask"]

#: A raw pixel is saturated at or above this fraction of the raw saturation level (the config or
#: header SATURATE, else the data type's limit). The one threshold detection, photometry and the
#: comparison choice share; to be more careful with a camera that turns non-linear before it
#: clips, set a lower ``saturation`` in the instrument configuration.
SATURATION_FRACTION = 1.0


class PixelFlag(IntFlag):
    """Bits of ``Image.mask``, the per-pixel bad-pixel map."""

    SATURATED = 1       # the raw value reached the saturation level (clipped light)
    UNILLUMINATED = 2   # the flat sees no light there (dead columns): not flat-fielded
    NONFINITE = 4       # NaN or inf
    COSMIC = 8          # a cosmic-ray hit that could not be repaired (in a star's core)

    @classmethod
    def no_data(cls) -> "PixelFlag":
        """Pixels that hold no usable value (everything but saturation)."""
        return cls.UNILLUMINATED | cls.NONFINITE


def raw_mask(data: np.ndarray, saturation: float | None, *, integer: bool = False) -> np.ndarray | None:
    """``PixelFlag`` map of raw pixels: saturated (``>= SATURATION_FRACTION * saturation``) and
    non-finite; None when no pixel is either (the common case costs a max and a min pass).

    A frame whose maximum is ``2**k - 1`` (k = 8..15), below ``saturation``, on several pixels was
    clipped by an ADC narrower than its data type (a 12-bit camera writing 16-bit files, whose
    header says nothing): those pixels are saturated too. ``integer``: the values were read from
    integers (BITPIX > 0), so none can be NaN (spares a pass).
    """
    data = np.asarray(data)
    if data.size == 0:
        return None
    limit = None
    if saturation is not None and np.isfinite(saturation) and saturation > 0:
        limit = SATURATION_FRACTION * float(saturation)
    floating = data.dtype.kind == "f" and not integer
    top = data.max()
    limit = _adc_limit(data, top, limit)
    finite = not floating or (np.isfinite(top) and np.isfinite(data.min()))
    if finite and (limit is None or top < limit):
        return None
    with np.errstate(invalid="ignore"):
        if limit is not None:
            mask = (data >= limit).view(np.uint8)  # True -> 1 == SATURATED
        else:
            mask = np.zeros(data.shape, np.uint8)
    if not finite:
        mask |= np.left_shift((~np.isfinite(data)).view(np.uint8), 2)  # 4 == NONFINITE
    return mask


def _adc_limit(data: np.ndarray, top, limit: float | None) -> float | None:
    """``top`` when it is an ADC's clipping value (``2**k - 1`` below ``limit``, reached by at
    least 3 pixels), else ``limit``."""
    if not np.isfinite(top) or (limit is not None and top >= limit):
        return limit
    k = np.log2(float(top) + 1.0)
    if not (8 <= k <= 15 and k == int(k)):
        return limit
    return float(top) if np.count_nonzero(data == top) >= 3 else limit


def integer_pixels(image) -> bool:
    """True when the frame's header says its pixels were stored as integers (BITPIX > 0)."""
    try:
        return int(image.header.get("BITPIX", -32)) > 0
    except Exception:  # no header, or a header without a usable BITPIX
        return False


@dataclass
class Sources:
    """Point sources on one frame, brightest first.

    ``coords`` has shape ``(n, 2)`` as ``(x, y)`` in 0-based pixel coordinates (numpy/photutils
    convention: the centre of the first pixel is 0, 0). Optional per-source arrays have length n.
    """

    coords: np.ndarray
    flux: np.ndarray | None = None
    peak: np.ndarray | None = None
    saturated: np.ndarray | None = None
    edge: np.ndarray | None = None
    a: np.ndarray | None = None
    b: np.ndarray | None = None
    theta: np.ndarray | None = None

    def __post_init__(self):
        self.coords = np.asarray(self.coords, dtype=float).reshape(-1, 2)
        n = len(self.coords)
        for name in ("flux", "peak", "a", "b", "theta"):
            v = getattr(self, name)
            if v is not None:
                setattr(self, name, np.asarray(v, dtype=float).reshape(n))
        for name in ("saturated", "edge"):
            v = getattr(self, name)
            setattr(self, name, np.zeros(n, bool) if v is None else np.asarray(v, dtype=bool).reshape(n))

    def __len__(self) -> int:
        return len(self.coords)

    def __getitem__(self, index) -> "Sources":
        """Subset by integer, slice, index array or boolean mask (always returns Sources)."""
        if isinstance(index, (int, np.integer)):
            index = [index]
        kw = {}
        for name in ("flux", "peak", "saturated", "edge", "a", "b", "theta"):
            v = getattr(self, name)
            kw[name] = None if v is None else v[index]
        return Sources(self.coords[index], **kw)

    @property
    def x(self) -> np.ndarray:
        return self.coords[:, 0]

    @property
    def y(self) -> np.ndarray:
        return self.coords[:, 1]

    def copy(self) -> "Sources":
        return self[np.arange(len(self))]

    def plot(self, ax=None, labels: bool = True, color: str = "y", radius: float = 8.0, **kwargs):
        """Circle the sources (with their index) on ``ax`` or the current axes."""
        import matplotlib.pyplot as plt
        from matplotlib.patches import Circle

        ax = ax or plt.gca()
        for i, (x, y) in enumerate(self.coords):
            ax.add_patch(Circle((x, y), radius, fill=False, color=color, lw=1, **kwargs))
            if labels:
                ax.annotate(str(i), (x + radius, y + radius), color=color, fontsize=7)
        return ax


@dataclass(slots=True)
class Image:
    """One frame: pixel ``data`` (float32 after calibration), ``header`` and what blocks measure.

    Times are JD UTC at mid-exposure; ``exposure`` in seconds; ``gain`` in e-/ADU; ``read_noise``
    in electrons; ``saturation`` in ADU of the raw frame. ``transform`` is the 3x3 affine matrix
    mapping reference-frame pixel coordinates to this frame's (``dx``, ``dy`` its translation).
    ``flags`` is the OR of :class:`~reduce.model.flags.Flag` bits; ``issues`` says why.
    ``mask`` is the bad-pixel map (:class:`PixelFlag` bits, uint8, shape of ``data``; None when
    no pixel is bad) and ``mask_bits`` the OR of the bits it holds (None: not built yet; see
    :meth:`ensure_mask`). Detection, centroids, photometry and sky leave masked pixels out.
    """

    data: np.ndarray | None = None
    mask: np.ndarray | None = None
    mask_bits: int | None = None
    header: Any = None
    path: str | None = None
    # metadata (from the header through the instrument configuration)
    jd: float | None = None
    exposure: float | None = None
    filter: str | None = None
    airmass: float | None = None
    gain: float | None = None
    read_noise: float | None = None
    saturation: float | None = None
    telescope: str | None = None
    target: str | None = None
    ra: float | None = None
    dec: float | None = None
    type: str | None = None
    instrument: Any = None
    wcs: Any = None
    # measurements
    sources: Sources | None = None
    bkg: float | None = None
    bkg_rms: float | None = None
    cutouts: Any = None
    epsf: np.ndarray | None = None
    psf_params: dict | None = None
    fwhm: float | None = None
    ellipticity: float | None = None
    theta: float | None = None
    transform: np.ndarray | None = None
    dx: float | None = None
    dy: float | None = None
    aperture: dict | None = None
    annulus: dict | None = None
    flags: int = 0
    issues: list = field(default_factory=list)
    computed: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return () if self.data is None else tuple(self.data.shape)

    @property
    def sky(self) -> float | None:
        """Global sky level (ADU) of the frame, an alias of ``bkg``."""
        return self.bkg

    def set_mask(self, mask: np.ndarray | None) -> None:
        """Set ``mask`` (None or empty: no bad pixel) and ``mask_bits``."""
        if mask is not None and mask.shape != self.shape:
            raise ValueError(f"mask shape {mask.shape} differs from the data shape {self.shape}")
        bits = 0 if mask is None else int(np.bitwise_or.reduce(mask, axis=None))
        self.mask, self.mask_bits = (mask if bits else None), bits

    def ensure_mask(self) -> None:
        """Build the mask from the pixels when no block did (no Calibration in the chain: the
        data are then raw ADU, so saturation is read from them directly)."""
        if self.mask_bits is None and self.data is not None:
            self.set_mask(raw_mask(self.data, self.saturation, integer=integer_pixels(self)))

    def bad_pixels(self, bits: int = PixelFlag.SATURATED | PixelFlag.no_data()) -> np.ndarray | None:
        """Boolean map of the pixels carrying any of ``bits``; None when there is none."""
        self.ensure_mask()
        if not (self.mask_bits or 0) & int(bits):
            return None
        return (self.mask & np.uint8(bits)) != 0

    def flag(self, flag: Flag, message: str, block: str | None = None) -> None:
        """Set a quality bit and record why (the frame's chain goes on)."""
        self.flags |= int(flag)
        self.issues.append((block or "", Flag(flag).name, message))

    def copy(self) -> "Image":
        """A copy whose arrays can be changed without touching this one."""
        import copy as _copy

        new = _copy.copy(self)
        if self.data is not None:
            new.data = self.data.copy()
        if self.mask is not None:
            new.mask = self.mask.copy()
        new.issues = list(self.issues)
        new.computed = dict(self.computed)
        new.sources = None if self.sources is None else self.sources.copy()
        return new

    def show(self, ax=None, sources: bool = True, cmap: str = "Greys_r", **kwargs):
        """Draw the frame with a zscale stretch (and its sources when known)."""
        import matplotlib.pyplot as plt
        from astropy.visualization import ZScaleInterval

        if self.data is None:
            raise ValueError("this image has no pixel data to show")
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 6))
        finite = np.isfinite(self.data)
        vmin, vmax = ZScaleInterval().get_limits(self.data[finite]) if finite.any() else (0, 1)
        ax.imshow(self.data, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax, **kwargs)
        if sources and self.sources is not None:
            self.sources.plot(ax=ax)
        ax.set_title(self.path.split("/")[-1] if self.path else "image")
        return ax
