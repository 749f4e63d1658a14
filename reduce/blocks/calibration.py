"""The Calibration block: overscan, bias, dark and flat (Trim is in :mod:`reduce.blocks.trim`).

Masters are built once (in ``setup`` or lazily on the first frame) with a sigma-clipped median
combine bounded by ``mem_limit_mb``, and reused by later blocks of the same process given the same
files and settings. The master dark is a rate (ADU/s) scaled to each frame's
exposure; the master flat is normalised to a median of 1. Negative pixels are kept as they are
and non-finite values stay NaN: no sentinel values (a prose pitfall).

Each calibrated frame carries a bad-pixel mask (``Image.mask``): pixels whose *raw* value reached
the saturation level (read before any subtraction, so a 1,200 ADU bias or a flat above 1 cannot
hide a clipped star), pixels the flat sees unilluminated (dead columns at bias level even in the
flats: left undivided, so finite, and masked) and non-finite pixels.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Callable

import numpy as np

from ..algorithms.combine import n_tiles, tiled_combine
from ..algorithms.sections import is_section, overscan_level, parse_section
from ..core.block import Block
from ..model.image import PixelFlag, integer_pixels, raw_mask
from .master_cache import MASTERS as _MASTERS
from .master_cache import file_signature as _file_signature
from .master_cache import loader_key as _loader_key

__all__ = ["Calibration"]

log = logging.getLogger("reduce")

def _as_list(x) -> list:
    """Calibration input (None, a path, an Image, a 2D array or an iterable of them) as a list."""
    if x is None:
        return []
    if isinstance(x, np.ndarray):
        return [x] if x.ndim == 2 else list(x)
    if isinstance(x, (str, os.PathLike)) or _is_image(x):
        return [x]
    return list(x)


def _is_image(x) -> bool:
    from ..model.image import Image

    return isinstance(x, Image)


def _label(item) -> str:
    if isinstance(item, np.ndarray):
        return "<array>"
    return str(getattr(item, "path", None) or "<in-memory image>") if _is_image(item) else str(item)


class Calibration(Block):
    """Subtract overscan, bias and scaled dark, divide by the flat.

    Parameters
    ----------
    darks, bias, flats : path, Image or iterable of them, optional
        Raw calibration frames; a missing type is skipped with a warning.
    loader : callable, optional
        Turns a path into an Image (default :class:`~reduce.io.fitsimage.FITSImage`).
    overscan : str or bool, optional
        A FITS section ``'[x1:x2,y1:y2]'``; ``None`` takes the instrument's ``overscan`` or the
        header's ``BIASSEC``; ``False`` disables overscan subtraction.
    combine : {'median', 'mean'}
        How masters are combined after sigma clipping.
    sigma : float
        Clipping threshold in robust standard deviations (0 disables clipping).
    mem_limit_mb : float
        Memory budget for combining; larger sets are combined by row tiles.
    min_flat : float
        Pixels whose normalised master flat is below this are unilluminated (dead columns,
        vignetted corners): they are not divided by the flat (their data stay finite) and are
        masked ``UNILLUMINATED`` (IRAF ccdproc's ``minreplace`` idea, plus the mask).

    Sets ``image.data`` (float32) and ``image.mask`` (see :class:`~reduce.model.image.PixelFlag`).
    """

    requires = ("data",)
    provides = ("data",)
    modifies_data = True

    def __init__(self, *, darks: Any = None, bias: Any = None, flats: Any = None,
                 loader: Callable | None = None, overscan: str | bool | None = None,
                 combine: str = "median", sigma: float = 3.0, mem_limit_mb: float = 512,
                 min_flat: float = 0.2):
        if combine not in ("median", "mean"):
            raise ValueError(f"combine must be 'median' or 'mean', not {combine!r}")
        if overscan not in (None, False) and not isinstance(overscan, str):
            raise TypeError("overscan must be a section string like '[1:20,1:512]', None or False")
        if isinstance(overscan, str):
            parse_section(overscan)
        if not mem_limit_mb or mem_limit_mb <= 0:
            raise ValueError("mem_limit_mb must be positive")
        if not 0 <= float(min_flat) < 1:
            raise ValueError(f"min_flat must be in [0, 1) (a fraction of the median flat), got {min_flat!r}")
        self.min_flat = float(min_flat)
        self.darks, self.bias, self.flats = _as_list(darks), _as_list(bias), _as_list(flats)
        self.loader = loader
        self.overscan = overscan
        self.combine = combine
        self.sigma = float(sigma)
        self.mem_limit_mb = float(mem_limit_mb)
        self.master_bias: np.ndarray | None = None
        self.master_dark: np.ndarray | None = None
        self.master_flat: np.ndarray | None = None
        self.dark_is_rate = True
        self._inv_flat: np.ndarray | None = None
        self._dark_cache: tuple | None = None
        self._static: tuple | None = None  # (masters' identity, mask of the masters' bad pixels)
        self._flat_cfa: str | None = None  # the flats' colour pattern ('' for mono), from the first
        self._built = False
        self._used: dict[str, list[str]] = {"bias": [], "darks": [], "flats": []}
        self._overscan_used: set[str] = set()

    # -- building masters ------------------------------------------------------------------
    def setup(self, context=None) -> None:
        """Build the master frames (once; later calls reuse them)."""
        if not self._built:
            self.build()

    def build(self) -> None:
        """Combine the calibration frames into ``master_bias``, ``master_dark``, ``master_flat``.

        A master this process already built from the very same files (path, size, modification
        time) and settings is reused: the groups of a run sharing calibration frames (every filter
        of a night shares its bias and darks) build each master once.
        """
        keys = {"bias": "none", "darks": "none"}  # None: built, but from in-memory frames
        if not self.bias:
            log.warning("Calibration: no bias frames, bias subtraction skipped")
        else:
            keys["bias"] = self._key("bias", self.bias, ())
            self._cached(keys["bias"], "bias", self._build_bias)
        if not self.darks:
            log.warning("Calibration: no dark frames, dark subtraction skipped")
        else:
            keys["darks"] = self._key("darks", self.darks, (keys["bias"],))
            self._cached(keys["darks"], "darks", self._build_dark)
        if not self.flats:
            log.warning("Calibration: no flat frames, flat-fielding skipped")
        else:
            keys["flats"] = self._key("flats", self.flats, (keys["bias"], keys["darks"]))
            self._cached(keys["flats"], "flats", self._build_flat)
        self._built = True

    def _build_bias(self) -> None:
        self.master_bias = self._master("bias", self.bias, self._prep_bias)

    def _build_dark(self) -> None:
        self.dark_is_rate = None  # decided on the first dark (needs a bias or an overscan)
        self.master_dark = self._master("darks", self.darks, self._prep_dark)

    def _build_flat(self) -> None:
        flat = self._master("flats", self.flats, self._prep_flat)
        if flat is not None:
            lit = np.isfinite(flat) & (flat > 0)
            if not lit.any():
                log.warning("Calibration: the master flat has no illuminated pixel; flat-fielding skipped")
                return
            flat = flat / np.median(flat[lit])
            if self._flat_cfa:  # a colour sensor: each colour to its own level (see equalise_cells)
                from ..algorithms.bayer import equalise_cells

                flat = equalise_cells(flat)
                log.info("Calibration: colour-sensor flats (%s): each of the 2x2 sub-lattices of the master "
                         "flat is normalised to its own median", self._flat_cfa)
            with np.errstate(invalid="ignore"):
                dead = ~(flat >= self.min_flat)  # NaN included
            flat[dead] = np.nan
            if dead.any():
                log.info("Calibration: %d unilluminated pixel(s) in the master flat (below %g of its "
                         "median) are masked and not flat-fielded", int(dead.sum()), self.min_flat)
            self.master_flat = flat.astype(np.float32)
            inv = np.ones(flat.shape, np.float32)
            np.divide(np.float32(1.0), self.master_flat, out=inv, where=~dead)
            self._inv_flat = inv

    # what each kind of master sets on the block (restored from the cache as built)
    _RESULTS = {"bias": ("master_bias",), "darks": ("master_dark", "dark_is_rate"),
                "flats": ("master_flat", "_inv_flat")}

    def _key(self, kind: str, items: list, upstream: tuple):
        """What a master depends on (None: not cacheable, e.g. in-memory images)."""
        files = _file_signature(items)
        if files is None or any(u is None for u in upstream):  # built from something uncacheable
            return None
        return (kind, files, upstream, self.combine, self.sigma, self.overscan, self.mem_limit_mb,
                _loader_key(self.loader), self.min_flat)

    def _cached(self, key, kind: str, build: Callable) -> None:
        """Run ``build`` for ``kind`` unless the process cache has its result for ``key``."""
        names = self._RESULTS[kind]
        if key is None:
            build()
            return

        def compute():
            before = set(self._overscan_used)
            build()
            return ({n: getattr(self, n) for n in names}, list(self._used[kind]),
                    set(self._overscan_used) - before)

        values, used, overscan, built = _MASTERS.get_or_build(key, compute, keep=self.loader)
        if not built:
            log.info("Calibration: master %s reused (same %d frame(s) as an earlier group)", kind, len(used))
        for n, v in values.items():
            setattr(self, n, v)
        self._used[kind] = list(used)
        self._overscan_used |= overscan

    def _load(self, item):
        if _is_image(item):
            return item
        if isinstance(item, np.ndarray):
            from ..model.image import Image

            return Image(data=item)
        loader = self.loader
        if loader is None:
            from ..io.fitsimage import FITSImage

            loader = FITSImage
        return loader(item)

    def _master(self, kind: str, items: list, prep: Callable) -> np.ndarray | None:
        """Pre-process and combine ``items``; unreadable or odd-shaped frames are skipped."""
        arrays, scal, used, shape = [], [], [], None
        budget = self.mem_limit_mb * 2**20
        keep = True
        for item in items:
            try:
                image = self._load(item)
                arr, s = prep(image, None)
            except Exception as exc:
                log.warning("Calibration: %s frame %s skipped: %s", kind, _label(item), exc)
                continue
            if shape is None:
                shape = arr.shape
            if arr.shape != shape:
                log.warning("Calibration: %s frame %s skipped: shape %s differs from %s",
                            kind, _label(item), arr.shape, shape)
                continue
            used.append(item)
            scal.append(s)
            keep = keep and n_tiles(len(items), shape, budget) == 1
            arrays.append(arr if keep else None)
        if not used:
            log.warning("Calibration: no usable %s frames, %s correction skipped", kind, kind)
            return None
        self._used[kind] = [_label(i) for i in used]
        if all(a is not None for a in arrays):
            get = lambda i, r0, r1: arrays[i][r0:r1]  # noqa: E731
        else:
            arrays.clear()
            log.info("Calibration: combining %d %s frames in row tiles (mem_limit_mb=%g)",
                     len(used), kind, self.mem_limit_mb)
            get = lambda i, r0, r1: prep(self._load(used[i]), scal[i])[0][r0:r1]  # noqa: E731
        master = tiled_combine(len(used), shape, get, method=self.combine, sigma=self.sigma,
                               mem_limit_bytes=budget)
        log.info("Calibration: master %s from %d frame(s)", kind, len(used))
        return master

    def _raw(self, image, record: bool = False) -> np.ndarray:
        """Pixels as float32 with the overscan level subtracted (when a section is known)."""
        data = np.asarray(image.data, dtype=np.float32)
        section = self._section(image)
        if section:
            data = data - overscan_level(data, section)
            if record:
                self._overscan_used.add(section)
        return data

    def _section(self, image) -> str | None:
        if self.overscan is False:
            return None
        if isinstance(self.overscan, str):
            return self.overscan
        inst = getattr(image, "instrument", None)
        if inst is not None and getattr(inst, "overscan", None):
            return inst.overscan
        header = getattr(image, "header", None)
        if header is not None:
            try:
                sec = header.get("BIASSEC")
            except Exception:
                sec = None
            if sec and is_section(sec):
                return str(sec).strip()
        return None

    def _prep_bias(self, image, _):
        return self._raw(image, record=True), None

    def _prep_dark(self, image, _):
        if self.dark_is_rate is None:
            self.dark_is_rate = self.master_bias is not None or self._section(image) is not None
            if not self.dark_is_rate:
                log.warning("Calibration: no bias frames nor overscan: the master dark (bias included) "
                            "is applied without exposure scaling; it suits frames of the darks' "
                            "exposure only")
        data = self._raw(image, record=True)
        if not self.dark_is_rate:
            return data, None
        t = image.exposure
        if t is None or not np.isfinite(t) or t <= 0:
            raise ValueError(f"dark exposure time is {t!r}; a dark rate needs a positive one")
        if self.master_bias is not None:
            data = data - self.master_bias
        return data / np.float32(t), None

    def _prep_flat(self, image, scale):
        if self._flat_cfa is None:
            from .bayer import cfa_settings

            found = cfa_settings(image)
            self._flat_cfa = f"{found[0]} from {found[1]}" if found else ""
        data = self._raw(image, record=True)
        if self.master_bias is not None:
            data = data - self.master_bias
        if self.master_dark is not None:
            data = data - self._dark_for(image)
        if scale is None:
            finite = data[np.isfinite(data)]
            scale = float(np.median(finite)) if finite.size else float("nan")
            if not np.isfinite(scale) or scale <= 0:
                raise ValueError(f"flat median level is {scale:g} after bias/dark subtraction")
        return data / np.float32(scale), scale

    def _dark_for(self, image) -> np.ndarray:
        if not self.dark_is_rate:
            return self.master_dark
        t = image.exposure
        if t is None or not np.isfinite(t):
            raise ValueError("the frame has no exposure time; the master dark rate cannot be scaled")
        cached = self._dark_cache
        if cached is None or cached[0] != t or cached[1] is not self.master_dark:
            # frames of a night share one exposure time: scale the dark once, not per frame
            cached = self._dark_cache = (t, self.master_dark, self.master_dark * np.float32(t))
        return cached[2]

    # -- applying -------------------------------------------------------------------------
    def _masters_mask(self) -> np.ndarray | None:
        """``PixelFlag`` map of what the masters leave bad on every frame (unilluminated flat
        pixels, non-finite master pixels), built once per set of masters; None when clean."""
        key = (id(self.master_bias), id(self.master_dark), id(self.master_flat))
        if self._static is not None and self._static[0] == key:
            return self._static[1]
        shape = next((m.shape for m in (self.master_bias, self.master_dark, self.master_flat)
                      if m is not None), None)
        mask = None if shape is None else np.zeros(shape, np.uint8)
        for master in (self.master_bias, self.master_dark):
            if master is not None:
                mask[~np.isfinite(master)] |= np.uint8(PixelFlag.NONFINITE)
        if self.master_flat is not None:
            mask[~np.isfinite(self.master_flat)] |= np.uint8(PixelFlag.UNILLUMINATED)
        if mask is not None and not mask.any():
            mask = None
        self._static = (key, mask)
        return mask

    def run(self, image) -> None:
        if not self._built:
            self.build()
        # raw ADU: before any subtraction
        mask = raw_mask(image.data, image.saturation, integer=integer_pixels(image))
        data = self._raw(image)
        if data is image.data and not data.flags.writeable:
            data = data.copy()
        for name, master in (("bias", self.master_bias), ("dark", self.master_dark),
                             ("flat", self.master_flat)):
            if master is not None and master.shape != data.shape:
                raise ValueError(f"frame shape {data.shape} does not match the master {name} "
                                 f"shape {master.shape}")
        if self.master_bias is not None:
            np.subtract(data, self.master_bias, out=data)
        if self.master_dark is not None:
            np.subtract(data, self._dark_for(image), out=data)
        if self._inv_flat is not None:
            np.multiply(data, self._inv_flat, out=data)
        image.data = data
        removed = self._bias_removed(image)
        if removed:
            image.computed["bias_removed"] = removed
        static = self._masters_mask()
        if static is not None:
            mask = static.copy() if mask is None else mask | static
        image.set_mask(mask)

    def _bias_removed(self, image) -> str | None:
        """What took the bias pedestal off this frame (None: it is still in the pixels, and the
        CCD equation must not count it as sky; see :mod:`reduce.run.pedestal`)."""
        if self.master_bias is not None:
            return "bias frames"
        section = self._section(image)
        if section:
            return f"overscan {section}"
        if self.master_dark is not None and not self.dark_is_rate:
            return "dark frames (bias included)"
        return None

    def provenance(self) -> dict:
        """Files and settings the masters came from."""
        return {"bias": list(self._used["bias"]), "darks": list(self._used["darks"]),
                "flats": list(self._used["flats"]), "overscan": sorted(self._overscan_used),
                "combine": self.combine, "sigma": self.sigma, "dark_is_rate": self.dark_is_rate,
                "min_flat": self.min_flat}
