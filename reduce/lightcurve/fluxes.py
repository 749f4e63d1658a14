"""Fluxes: the photometry of a night (apertures x stars x frames) and what is derived from it.

Constructed by the ``GetFluxes`` block (or by hand); differential photometry, binning, plots and
tables are methods (see ``reduce.diffphot`` for the weighting maths). Every method returns a new
``Fluxes``; nothing is modified in place except the settable ``target``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import ensemble
from ..core.errors import Flag
from .tables import LIGHTCURVE_SCHEMA as TABLE_SCHEMA_VERSION  # one schema for every product

__all__ = ["Fluxes", "TABLE_SCHEMA_VERSION"]
_ALIASES = {"bkg": "sky"}
_PER_FRAME = ("fwhm", "sky", "airmass", "dx", "dy")


class Fluxes:
    """Raw or differential fluxes.

    Parameters
    ----------
    time : (n_frames,) JD UTC at mid-exposure.
    fluxes, errors : (n_apertures, n_stars, n_frames) background-subtracted flux and 1-sigma
        error (ADU), kept as the ``fluxes`` and ``errors`` cubes; ``flux`` and ``error`` are the
        target's series in the chosen aperture (n_frames,), as in prose.
    apertures : (n_apertures,) or (n_apertures, n_frames) aperture radii in pixels.
    target : index of the target star.
    data : per-frame arrays keyed by name (``fwhm``, ``sky``, ``airmass``, ``dx``, ``dy``,
        ``exposure``) and per-star-per-frame arrays of shape (n_stars, n_frames) (``x``, ``y``,
        ``peak``, ``bkg``).
    flags : (n_frames,) int bit masks (see ``reduce.core.errors.Flag``).
    files : (n_frames,) source file names.
    meta : free metadata (comparison stars, weights, chosen aperture, ``saturation`` level, ...).
        After differential photometry: ``comparisons`` (star indices, by decreasing weight),
        ``weights`` (matching ``comparisons``, sum 1), ``weights_all`` (n_apertures, n_stars),
        ``aperture`` (chosen index), ``aperture_radius`` (pixels), ``raw`` (the raw Fluxes).
        After ``sigma_clipping_data``/``mask``: ``rejected`` (list of dicts describing removed frames).
    """

    def __init__(self, time, fluxes, errors=None, apertures=None, target: int = 0, data=None,
                 flags=None, files=None, meta=None):
        self.time = np.asarray(time, dtype=float).reshape(-1)
        fluxes = np.asarray(fluxes, dtype=float)
        if fluxes.ndim == 1:
            fluxes = fluxes[None, None, :]
        elif fluxes.ndim == 2:
            fluxes = fluxes[None, :, :]
        if fluxes.ndim != 3 or fluxes.shape[-1] != self.time.size:
            raise ValueError(f"fluxes must have shape (n_apertures, n_stars, n_frames={self.time.size}), "
                             f"got {fluxes.shape}")
        self.fluxes = fluxes
        self.errors = (np.full_like(fluxes, np.nan) if errors is None
                       else np.asarray(errors, dtype=float).reshape(fluxes.shape))
        self.apertures = (np.arange(fluxes.shape[0], dtype=float) if apertures is None
                          else np.asarray(apertures, dtype=float))
        if self.apertures.shape[0] != fluxes.shape[0]:
            raise ValueError(f"apertures has {self.apertures.shape[0]} radii for "
                             f"{fluxes.shape[0]} flux apertures")
        self.target = target
        self.data = {k: np.asarray(v) for k, v in (data or {}).items()}
        for k, v in self.data.items():
            if v.ndim == 0 or v.shape[-1] != self.time.size:
                raise ValueError(f"data[{k!r}] must end with the frame axis ({self.time.size}), "
                                 f"got shape {v.shape}")
        self.flags = (np.zeros(self.time.size, dtype=np.int64) if flags is None
                      else np.asarray(flags, dtype=np.int64).reshape(self.time.size))
        self.files = (np.array([""] * self.time.size, dtype=object) if files is None
                      else np.asarray(files, dtype=object).reshape(self.time.size))
        self.meta = dict(meta or {})

    # ------------------------------------------------------------------ basic access
    @property
    def target(self) -> int:
        """Index of the target star (settable; checked against the number of stars)."""
        return self._target

    @target.setter
    def target(self, value):
        value = int(value)
        n = self.fluxes.shape[1]
        if not -n <= value < n:
            raise ValueError(f"target {value} out of range for {n} stars")
        self._target = value % n

    @property
    def shape(self):
        """(n_apertures, n_stars, n_frames)."""
        return self.fluxes.shape

    def __len__(self) -> int:
        return self.time.size

    def __repr__(self) -> str:
        a, s, f = self.shape
        kind = "differential" if "weights_all" in self.meta else "raw"
        return f"<Fluxes {kind}: {a} apertures x {s} stars x {f} frames, target={self.target}>"

    def __getattr__(self, name):
        data = self.__dict__.get("data", {})
        if name in data:
            return data[name]
        raise AttributeError(f"'Fluxes' has no attribute {name!r}")

    def get(self, name, default=None):
        """Per-frame quantity ``name`` (n_frames,), or ``default`` when not measured.

        ``sky`` (alias ``bkg``) falls back to the target's row of a per-star ``bkg`` array; per-star
        arrays (``x``, ``y``, ``peak``) give the target's row.
        """
        name = _ALIASES.get(name, name)
        candidates = [name, "bkg"] if name == "sky" else [name]
        for key in candidates:
            if key in self.data:
                v = np.asarray(self.data[key], dtype=float)
                return v[self.target] if v.ndim == 2 else v
        return default

    fwhm = property(lambda self: self.get("fwhm"), doc="Per-frame FWHM (pixels) or None.")
    sky = property(lambda self: self.get("sky"), doc="Per-frame sky level (ADU/pixel) or None.")
    airmass = property(lambda self: self.get("airmass"), doc="Per-frame airmass or None.")
    dx = property(lambda self: self.get("dx"), doc="Per-frame x shift to the reference or None.")
    dy = property(lambda self: self.get("dy"), doc="Per-frame y shift to the reference or None.")
    x = property(lambda self: self.data.get("x"), doc="Star x positions (n_stars, n_frames) or None.")
    y = property(lambda self: self.data.get("y"), doc="Star y positions (n_stars, n_frames) or None.")

    @property
    def aperture(self) -> int:
        """Chosen aperture index (meta ``aperture``; the middle one before differential photometry)."""
        return int(self.meta.get("aperture", self.shape[0] // 2))

    @property
    def aperture_radius(self) -> float:
        """Radius in pixels of the chosen aperture (median over frames when radii vary)."""
        r = np.atleast_1d(self.apertures[self.aperture])
        return float(ensemble.nanmedian(r))

    @property
    def comparisons(self) -> list[int]:
        """Comparison star indices (empty before differential photometry)."""
        return list(self.meta.get("comparisons", []))

    @property
    def weights(self) -> list[float]:
        """Weights matching ``comparisons`` (sum 1)."""
        return list(self.meta.get("weights", []))

    @property
    def raw(self) -> "Fluxes":
        """The raw Fluxes this differential one was derived from (self when raw)."""
        return self.meta.get("raw", self)

    @property
    def flux(self) -> np.ndarray:
        """Target flux in the chosen aperture (n_frames,): the light curve after ``autodiff``/``diff``."""
        return self.fluxes[self.aperture, self.target]

    @property
    def error(self) -> np.ndarray:
        """1-sigma error of ``flux`` (n_frames,)."""
        return self.errors[self.aperture, self.target]

    diff_flux = property(lambda self: self.flux, doc="Alias of ``flux`` (the target's series).")
    diff_error = property(lambda self: self.error, doc="Alias of ``error``.")

    # ------------------------------------------------------------------ frame selection
    def _replace(self, **changes) -> "Fluxes":
        """A copy with some constructor arguments replaced (arrays are shared, meta copied)."""
        kw = dict(time=self.time, fluxes=self.fluxes, errors=self.errors, apertures=self.apertures,
                  target=self.target, data=self.data, flags=self.flags, files=self.files,
                  meta=dict(self.meta))
        kw.update(changes)
        return Fluxes(**kw)

    def mask(self, keep, *, reason="masked", flag=Flag.OUTLIER_REJECTED) -> "Fluxes":
        """A new Fluxes with only the frames where ``keep`` is True.

        Removed frames are not lost: each is appended to ``meta['rejected']`` as a dict (``time``,
        ``file``, ``index`` in this Fluxes, ``flag`` = previous flags | ``flag``, ``reason``).
        """
        keep = np.asarray(keep, dtype=bool).reshape(self.time.size)
        reasons = np.broadcast_to(np.asarray(reason, dtype=object), keep.shape)
        rejected = list(self.meta.get("rejected", []))
        for i in np.flatnonzero(~keep):
            rejected.append({"index": int(i), "time": float(self.time[i]), "file": str(self.files[i]),
                             "flag": int(self.flags[i] | int(flag)), "reason": str(reasons[i])})
        data = {}
        for k, v in self.data.items():
            data[k] = v[..., keep]
        aps = self.apertures[:, keep] if self.apertures.ndim == 2 else self.apertures
        meta = dict(self.meta, rejected=rejected)
        raw = meta.get("raw")
        if isinstance(raw, Fluxes) and raw is not self and len(raw) == len(self):
            meta["raw"] = raw.mask(keep, reason=reason, flag=flag)  # keep raw aligned with self
        return self._replace(time=self.time[keep], fluxes=self.fluxes[..., keep],
                             errors=self.errors[..., keep], apertures=aps, data=data,
                             flags=self.flags[keep], files=self.files[keep], meta=meta)

    def sigma_clipping_data(self, *, iterations: int = 5, **sigmas) -> "Fluxes":
        """Remove frames that are outliers in named per-frame quantities.

        ``sigma_clipping_data(bkg=3, fwhm=5)`` drops frames whose sky (``bkg`` is an alias of
        ``sky``) jumps away from its local trend by more than 3 robust sigmas, or whose FWHM
        does by more than 5, iterating up to ``iterations`` times (one frame per neighbourhood of
        9 per pass, so a frame next to a jump is never blamed for it). The trend is a running median
        of 5 frames (see ``_local_trend``): it follows any smooth monotonic change exactly, however
        steep or curved (a twilight sky falling 80-fold in 30 minutes, seeing drifting with
        airmass), and ignores a jump of one or two frames, at the ends of the night too. The
        sigma is the frame-to-frame noise (from second differences, blind to smooth trends), at
        least 1 % of the value; a positive quantity is compared in relative terms (logarithm),
        so a bright twilight sky is allowed proportionally larger wiggles. NaN values are not
        outliers (those frames carry their own flags). Removed frames are recorded in
        ``meta['rejected']`` with ``Flag.OUTLIER_REJECTED`` and the reason (see ``mask``).
        """
        if not sigmas:
            raise ValueError("name at least one quantity, e.g. sigma_clipping_data(bkg=3)")
        series = {}
        for name, n_sigma in sigmas.items():
            values = self.get(name)
            if values is None:
                raise ValueError(f"no per-frame {name!r} data to clip on; have {sorted(self.data)}")
            if not float(n_sigma) > 0:
                raise ValueError(f"{name}={n_sigma!r}: the clipping threshold must be > 0 sigma")
            series[name] = (np.asarray(values, float), float(n_sigma))
        keep = np.ones(self.time.size, bool)
        reason = np.array([""] * self.time.size, dtype=object)
        for _ in range(max(1, int(iterations))):
            new_keep = keep.copy()
            for name, (v, n_sigma) in series.items():
                judged = _jumps(v, keep, self.time)
                if judged is None:
                    continue
                dev, rank = judged
                # only the worst frame of a neighbourhood per pass: a jump inside a steep trend
                # shifts the running median of its neighbours by one step, not their values
                out = new_keep & (dev > n_sigma) & _local_max(rank, keep)
                for i in np.flatnonzero(out):
                    reason[i] = f"{name} outlier: {dev[i]:.1f} sigma > {n_sigma:g}"
                new_keep &= ~out
            if np.array_equal(new_keep, keep):
                break
            keep = new_keep
        return self.mask(keep, reason=reason, flag=Flag.OUTLIER_REJECTED)

    # ------------------------------------------------------------------ differential photometry
    def _frames(self):
        return ensemble.usable_frames(self.fluxes, self.target)

    def autodiff(self, *, max_comps: int = 20, iterations: int = 50, reject: float = 1.5,
                 exclude=(), method: str = "p2p", dt: float | None = None,
                 saturation: float | None = None) -> "Fluxes":
        """Automatic differential photometry (Broeg et al. 2005 ensemble, best aperture).

        Comparison candidates are the ``max_comps`` brightest stars that are not the target, not in
        ``exclude``, never saturated (``data['saturated']``, from the raw pixels, in any frame;
        without it ``data['peak'] >= saturation``, default ``meta['saturation']``) and finite in
        every usable frame. They are weighted, per aperture,
        by the inverse variance of their light curve against the weighted ensemble of the others,
        iterated (at most ``iterations`` times); comparisons noisier than ``reject`` x the fitted
        noise model are dropped. The aperture minimising the target's scatter (``method``: "p2p",
        "binned" with ``dt`` days, or "std"; plus, with ``data['fwhm']``, its trend with the seeing
        relative to a small good aperture) is chosen among those measuring the target on
        (nearly) every frame (see ``ensemble.best_aperture``); frames where the chosen aperture of
        the target could not be measured get TARGET_NEAR_EDGE, TARGET_MASKED or TARGET_SATURATED
        (from ``data['aperture_flags']``). Returns differential Fluxes: every star and
        aperture divided by its ensemble (see ``ensemble.differential``), with ``meta`` holding
        ``comparisons``, ``weights``, ``weights_all``, ``aperture``, ``aperture_radius``, ``raw``,
        ``scatter`` (per aperture) and ``rejected_comparisons``.
        """
        if max_comps < 1:
            raise ValueError("max_comps must be >= 1")
        frames = self._frames()
        if not frames.any():
            raise ValueError("the target has no finite positive flux in any frame")
        sat = self.meta.get("saturation") if saturation is None else saturation
        comps = ensemble.select_comparisons(
            self.fluxes, target=self.target, frames=frames, peak=self.data.get("peak"),
            saturation=None if sat is None else float(sat), saturated=self.data.get("saturated"),
            max_comps=int(max_comps), exclude=exclude)
        if not comps.any():
            raise ValueError("no usable comparison star (all saturated, non-finite or excluded)")
        weights, info = ensemble.weights_broeg(self.fluxes, self.errors, comps=comps, frames=frames,
                                               iterations=int(iterations), reject=reject)
        rejected = [int(i) for i in np.flatnonzero(info["rejected"].any(axis=0))]
        return self._differential(weights, frames, method=method, dt=dt,
                                  extra={"method": "broeg2005", "iterations": info["iterations"],
                                         "rejected_comparisons": rejected,
                                         "comparison_scatter": info["sigma"]})

    def diff(self, comps, weights=None, aperture: int | None = None, *, method: str = "p2p",
             dt: float | None = None) -> "Fluxes":
        """Differential photometry with explicit comparison stars ``comps`` (indices).

        ``weights`` (same length as ``comps``; default equal) are used in every aperture. The
        aperture is ``aperture`` when given, else the one minimising the target's scatter.
        """
        comps = np.atleast_1d(np.asarray(comps, dtype=int))
        n_ap, n_stars, _ = self.shape
        if comps.size == 0:
            raise ValueError("give at least one comparison star")
        if np.any((comps < 0) | (comps >= n_stars)) or self.target in comps:
            raise ValueError(f"comparisons must be star indices in [0, {n_stars}) other than the "
                             f"target {self.target}, got {comps.tolist()}")
        w = np.ones(comps.size) if weights is None else np.asarray(weights, dtype=float)
        if w.shape != comps.shape or np.any(w < 0) or not np.all(np.isfinite(w)) or w.sum() <= 0:
            raise ValueError("weights must be finite, non-negative, not all zero, one per comparison")
        full = np.zeros((n_ap, n_stars))
        full[:, comps] = w / w.sum()
        if aperture is not None and not -n_ap <= int(aperture) < n_ap:
            raise ValueError(f"aperture {aperture} out of range for {n_ap} apertures")
        return self._differential(full, self._frames(), method=method, dt=dt, aperture=aperture,
                                  extra={"method": "explicit"})

    def _differential(self, weights, frames, *, method, dt, aperture=None, extra=None) -> "Fluxes":
        """Divide by the ensemble, choose the aperture and package the metadata."""
        d, e = ensemble.differential(self.fluxes, self.errors, weights, frames=frames)
        idx, metric = ensemble.best_aperture(d[:, self.target], time=self.time, method=method,
                                             dt=dt, frames=frames, seeing=self._seeing())
        if aperture is not None:
            idx = int(aperture) % self.shape[0]
        w = weights[idx]
        order = [int(i) for i in np.argsort(-w, kind="stable") if w[i] > 0]
        meta = dict(self.meta)
        meta.update(extra or {})
        meta.update(comparisons=order, weights=[float(w[i]) for i in order], weights_all=weights,
                    aperture=idx, scatter=metric, raw=self.raw)
        flags, issues = self._aperture_flags(idx, np.isfinite(d[idx, self.target]))
        meta["aperture_issues"] = issues
        out = self._replace(fluxes=d, errors=e, meta=meta, flags=self.flags | flags)
        out.meta["aperture_radius"] = out.aperture_radius
        return out

    def _seeing(self):
        """Per-frame FWHM (``data['fwhm']``) when every frame has one, else None."""
        fwhm = self.data.get("fwhm")
        if fwhm is None or np.shape(fwhm) != (len(self),):
            return None
        fwhm = np.asarray(fwhm, float)
        return fwhm if np.all(np.isfinite(fwhm)) else None

    def _aperture_flags(self, aperture: int, measured: np.ndarray) -> tuple[np.ndarray, list]:
        """Frame flags (n_frames,) where the target's aperture ``aperture`` was not ``measured``,
        and ``[{'index', 'file', 'reason'}]`` saying why (from ``data['aperture_flags']``)."""
        from ..algorithms.apertures import EDGE, MASKED, SATURATED

        bits = self.data.get("aperture_flags")
        flags = np.zeros(len(self), np.int64)
        if bits is None or np.ndim(bits) != 3:
            return flags, []
        b = np.asarray(bits)[aperture, self.target]
        lost = ~measured & (b != 0)
        r = float(ensemble.nanmedian(np.atleast_1d(self.apertures[aperture])))
        issues = []
        for i in np.flatnonzero(lost):
            for bit, flag, why in ((EDGE, Flag.TARGET_NEAR_EDGE, "leaves the frame"),
                                   (MASKED, Flag.TARGET_MASKED, "overlaps masked pixels (unilluminated or NaN)"),
                                   (SATURATED, Flag.TARGET_SATURATED, "overlaps saturated pixels")):
                if b[i] & bit:
                    flags[i] |= int(flag)
                    issues.append({"index": int(i), "file": str(self.files[i]),
                                   "reason": f"the chosen target aperture (r={r:.1f} px) {why}"})
        return flags, issues

    # ------------------------------------------------------------------ binning
    def bin(self, dt: float, estimate_error: bool = True) -> "Fluxes":
        """Fluxes averaged in time bins of ``dt`` days (bins start at the first frame).

        ``estimate_error=True``: error = scatter within the bin / sqrt(n) (propagated error when a
        bin holds one point); otherwise sqrt(sum(error^2)) / n. Per-frame data are averaged, flags
        OR-ed; ``data['n_binned']`` holds the number of frames per bin and ``files`` the first file.
        """
        t, f, e, _ = ensemble.binned(self.time, self.fluxes, dt, error=self.errors,
                                     estimate_error=estimate_error)
        order, starts = ensemble.bin_edges(self.time, dt)
        counts = np.diff(np.r_[starts, self.time.size])
        data = {}
        for k, v in self.data.items():
            if np.issubdtype(np.asarray(v).dtype, np.number) or np.asarray(v).dtype == bool:
                data[k] = ensemble.binned(self.time, np.asarray(v, float), dt)[1]
        data["n_binned"] = counts
        flags = np.bitwise_or.reduceat(self.flags[order], starts)
        aps = self.apertures
        if aps.ndim == 2:
            aps = ensemble.binned(self.time, aps, dt)[1]
        meta = dict(self.meta, binned=float(dt))
        return self._replace(time=t, fluxes=f, errors=e, apertures=aps, data=data, flags=flags,
                             files=self.files[order][starts], meta=meta)

    # ------------------------------------------------------------------ outputs
    def plot(self, ax=None, *, binned: float | None = None, **kwargs):
        """Target light curve (chosen aperture) as points, with an optional ``binned`` (days) overlay."""
        from ..plots import plot_lightcurve
        return plot_lightcurve(self, ax=ax, binned_dt=binned, errorbars=False, **kwargs)

    def errorbar(self, ax=None, *, binned: float | None = None, **kwargs):
        """Target light curve (chosen aperture) with error bars, optional ``binned`` overlay."""
        from ..plots import plot_lightcurve
        return plot_lightcurve(self, ax=ax, binned_dt=binned, errorbars=True, **kwargs)

    def to_table(self):
        """astropy Table of the light-curve schema (``reduce.lightcurve.tables.LIGHTCURVE_COLUMNS``).

        time, bjd_tdb, flux, flux_err (target, chosen aperture) and the per-frame columns; a
        quantity not measured is NaN. ``bjd_tdb`` comes from ``data['bjd_tdb']``, else from
        ``meta['target_ra'/'target_dec']`` (and ``meta['site']``: latitude, longitude, elevation).
        ``meta`` holds target, aperture, aperture_radius, comparisons, weights, schema version.
        """
        from .tables import lightcurve_table

        cols = {"time": self.time, "bjd_tdb": self._bjd_tdb(), "flux": self.flux, "flux_err": self.error}
        for name in ("airmass", "fwhm", "sky", "dx", "dy", "x", "y"):
            v = self.get(name)
            if v is not None:
                cols[name] = np.asarray(v, float)
        cols["flag"] = self.flags.astype(np.int64)
        cols["file"] = [Path(str(f)).name for f in self.files]
        return lightcurve_table(cols, self._table_meta())

    def _bjd_tdb(self) -> np.ndarray:
        """BJD_TDB per frame: measured (``data``) or computed from the target and site in ``meta``."""
        if "bjd_tdb" in self.data:
            return np.asarray(self.data["bjd_tdb"], float)
        ra, dec = self.meta.get("target_ra"), self.meta.get("target_dec")
        if ra is None or dec is None:
            return np.full(self.time.size, np.nan)
        from ..ephemeris import bjd_tdb

        site = tuple(self.meta.get("site") or (None, None, None))
        return bjd_tdb(self.time, float(ra), float(dec), *site)

    def _table_meta(self) -> dict:
        meta = {"schema": TABLE_SCHEMA_VERSION, "target": self.target, "aperture": self.aperture,
                "aperture_radius": self.aperture_radius,
                "comparisons": [int(i) for i in self.comparisons],
                "weights": [float(w) for w in self.weights]}
        if "binned" in self.meta:
            meta["binned"] = float(self.meta["binned"])
        for key in ("target_ra", "target_dec"):
            if self.meta.get(key) is not None:
                meta[key] = float(self.meta[key])
        return meta

    def save(self, path, *, header: dict | None = None) -> Path:
        """Write the light-curve product as .csv, .ecsv or .fits (by extension), atomically.

        The same writer as ``reduce run`` (:mod:`reduce.lightcurve.tables`): the CSV is plain, the ECSV
        the same table below a ``# `` block with units, schema and meta (``Table.read(path)``;
        ``pd.read_csv(path, comment='#')``); the FITS file holds LIGHTCURVE, STARS, FLUXES/ERRORS (the raw fluxes,
        apertures x stars x frames), APERTURES and WEIGHTS. ``header`` adds primary-header values
        (OBJECT, TELESCOP, FILTER, ...). A missing folder raises ``OutputError``.
        """
        from .tables import product_extras, product_header, write_product

        path = Path(path)
        if path.suffix.lower() not in (".csv", ".ecsv", ".fits", ".fit"):
            raise ValueError(f"cannot save {path.name!r}: use a .csv, .ecsv or .fits extension")
        table = self.to_table()
        fits_file = path.suffix.lower() in (".fits", ".fit")
        raw = self.raw if len(self.raw) == len(self) else self  # binned: the cubes follow the rows
        extras = product_extras(raw, self) if fits_file else None
        return write_product(path, table, extra_hdus=extras,
                             header=product_header(self, **(header or {})) if fits_file else None)

    @classmethod
    def load(cls, path) -> "Fluxes":
        """The raw Fluxes of a FITS light-curve product (``save`` or ``reduce run``): every star
        at every aperture, per-frame columns as ``data``; ``meta`` keeps the comparison stars,
        weights (``weights``, and ``stored_weights``: apertures x stars), the chosen aperture and
        the LIGHTCURVE table (``table``): ``diff(f.comparisons, f.weights, aperture=f.aperture)``
        redoes the light curve."""
        from astropy.io import fits
        from astropy.table import Table

        from .tables import decode_name

        with fits.open(path, memmap=False) as hdul:
            names = [h.name for h in hdul]
            if "LIGHTCURVE" not in names or "FLUXES" not in names:
                raise ValueError(f"{path}: not a reduce light-curve product (no LIGHTCURVE/FLUXES HDU)")
            table = Table.read(hdul["LIGHTCURVE"])
            flux = np.asarray(hdul["FLUXES"].data, float)
            error = np.asarray(hdul["ERRORS"].data, float) if "ERRORS" in names else None
            apertures = np.asarray(hdul["APERTURES"].data, float) if "APERTURES" in names else None
            weights = np.asarray(hdul["WEIGHTS"].data, float) if "WEIGHTS" in names else None
            head = hdul[0].header
            stars = Table.read(hdul["STARS"]) if "STARS" in names else None
        data = {c: np.asarray(table[c], float) for c in ("bjd_tdb", "airmass", "fwhm", "sky", "dx", "dy")
                if c in table.colnames}
        meta = {"table": table, "aperture": int(head.get("APINDEX", flux.shape[0] // 2))}
        if weights is not None:
            meta["stored_weights"] = weights
        if stars is not None:
            comps = [int(s) for s in stars["star"][stars["comparison"]]]
            order = sorted(comps, key=lambda s: -float(stars["weight"][s]))
            meta.update(comparisons=order, weights=[float(stars["weight"][s]) for s in order])
        for key, name in (("RA_OBJ", "target_ra"), ("DEC_OBJ", "target_dec")):
            if key in head:
                meta[name] = float(head[key])
        files = [decode_name(f) for f in table["file"]] if "file" in table.colnames else None
        return cls(np.asarray(table["time"], float), flux, error, apertures,
                   target=int(head.get("TARGET", 0)), data=data,
                   flags=np.asarray(table["flag"], np.int64), files=files, meta=meta)


RELATIVE_SIGMA_FLOOR = 0.01


def _jumps(v, keep, time=None) -> tuple[np.ndarray, np.ndarray] | None:
    """|deviation| of every frame from the local trend of the kept frames, in robust sigmas (NaN
    for NaN values), and a ranking key (the deviation, ties broken by the second difference: a
    jump sticks out of both its neighbours); None when nothing can be judged (fewer than 7
    usable frames, no noise).

    A series positive on every kept frame is taken in logarithm (relative deviations); the sigma
    is the point-to-point noise from second differences, at least 1 % of the value (a nearly
    noiseless quantity must still change by a meaningful amount to be an outlier).
    """
    v = np.asarray(v, float)
    ok = keep & np.isfinite(v)
    idx = np.flatnonzero(ok)
    if idx.size < 7:
        return None
    relative = bool(np.all(v[idx] > 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        y = np.log(v) if relative else v.copy()
    x = idx.astype(float)
    if time is not None and np.isfinite(time[idx]).all() and np.all(np.diff(time[idx]) > 0):
        x = np.asarray(time, float)[idx]
    trend = _local_trend(y[idx], x)
    d2 = y[idx][:-2] - 2 * y[idx][1:-1] + y[idx][2:]  # white noise: sqrt(6) sigma; a smooth trend: ~0
    sigma = ensemble.MAD_TO_SIGMA * ensemble.nanmedian(np.abs(d2 - ensemble.nanmedian(d2))) / np.sqrt(6)
    level = np.interp(np.arange(v.size), idx, trend)
    floor = np.log1p(RELATIVE_SIGMA_FLOOR) if relative else RELATIVE_SIGMA_FLOOR * np.abs(level)
    sig = np.maximum(sigma, floor)
    if not np.any(sig > 0):
        return None
    bump = np.zeros(v.size)
    bump[idx[1:-1]] = np.abs(d2)
    with np.errstate(invalid="ignore", divide="ignore"):
        dev = np.abs(y - level) / sig
        return dev, dev + 1e-3 * bump / sig


def _local_max(dev: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """True for kept frames whose ``dev`` is the largest among the kept frames within 4 of them
    (a jump disturbs the running median, and the end-point extrapolation, that far)."""
    idx = np.flatnonzero(keep & np.isfinite(dev))
    out = np.zeros(dev.size, bool)
    if idx.size:
        d = np.pad(dev[idx], 4, constant_values=-np.inf)
        out[idx] = dev[idx] >= np.lib.stride_tricks.sliding_window_view(d, 9).max(axis=1)
    return out


def _local_trend(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Running median of 5 (3 next to the ends; at the ends the median of the value, its smoothed
    neighbour and an extrapolation to its position ``x``: Tukey's end-point rule). Of two
    extrapolations the one nearer the value is used: the parabola through the next three smoothed
    values (follows a curved trend) and the median of the straight lines through every pair of the
    next five values (not moved by one jump among them); an end frame is an outlier when both miss.

    A median of a monotonic window is its middle value, so any smooth monotonic trend, however
    curved, is followed exactly, while one or two outlying frames never set it.
    """
    n = y.size
    z = y.copy()
    z[2:-2] = np.median(np.lib.stride_tricks.sliding_window_view(y, 5), axis=1)
    z[1], z[-2] = np.median(y[:3]), np.median(y[-3:])
    z[0] = np.median([y[0], z[1], _extrapolate(x[1:6], y[1:6], z[1:4], x[0], y[0])])
    z[n - 1] = np.median([y[-1], z[-2], _extrapolate(x[-6:-1][::-1], y[-6:-1][::-1], z[-4:-1][::-1],
                                                     x[-1], y[-1])])
    return z


def _extrapolate(x, y, z, at, value) -> float:
    """The extrapolation to ``at`` nearer ``value``: the parabola through (x[:3], z) or the median
    of the straight lines through every pair of points (x, y)."""
    (x0, x1, x2), (z0, z1, z2) = x[:3], z
    parabola = (z0 * (at - x1) * (at - x2) / ((x0 - x1) * (x0 - x2))
                + z1 * (at - x0) * (at - x2) / ((x1 - x0) * (x1 - x2))
                + z2 * (at - x0) * (at - x1) / ((x2 - x0) * (x2 - x1)))
    j, k = np.triu_indices(len(x), 1)
    line = np.median(y[j] + (y[j] - y[k]) * (at - x[j]) / (x[j] - x[k]))
    return float(parabola if abs(parabola - value) <= abs(line - value) else line)

