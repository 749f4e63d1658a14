"""Fluxes: the photometry of a night (apertures x stars x frames) and what is derived from it.

Constructed by the ``GetFluxes`` block (or by hand); differential photometry, binning, plots and
tables are methods over the maths of this package (``ensemble``: comparison weights;
``aperture_choice``, ``binning``, ``clipping``, ``tables``). Every method returns a new ``Fluxes``;
nothing is modified in place except the settable ``target``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..model.flags import Flag
from .aperture_choice import best_aperture, unmeasured_frames
from .binning import bin_edges, binned
from .clipping import outlier_frames
from .guards import (GUARD_SIGMA, GUARD_WINDOW, comparison_light, ensemble_error, light_loss_frames,
                     target_outliers)
from .ensemble import differential, flat_residual, select_comparisons, single_frame_jumps, usable_frames, weights_broeg
from .stats import nanmedian

__all__ = ["Fluxes"]
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
    flags : (n_frames,) int bit masks (see ``reduce.model.flags.Flag``).
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
        return float(nanmedian(r))

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
        of 5 frames (see ``clipping._local_trend``): it follows any smooth monotonic change exactly, however
        steep or curved (a twilight sky falling 80-fold in 30 minutes, seeing drifting with
        airmass), and ignores a jump of one or two frames, at the ends of the night too; on
        nights of 30 frames or more a frame the neighbours' smooth local fits follow (a cloud's
        sky peak a few frames wide: ``guards.neighbour_miss``) is no outlier either. The sigma
        is the frame-to-frame noise (from second differences, blind to smooth trends), the
        night's or where larger the local one (a sky wandering under clouds), at least 1 % of the
        value; a positive quantity is compared in relative terms (logarithm),
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
        keep, reason = outlier_frames(series, self.time, iterations=iterations)
        return self.mask(keep, reason=reason, flag=Flag.OUTLIER_REJECTED)

    def set_aside_clouds(self, max_loss: float) -> "Fluxes":
        """Remove frames whose comparisons lost more than ``max_loss`` (0-1) of their light.

        A transparency loss is what the ensemble corrects: a clouded frame is kept, with its
        larger error, unless the light of the comparisons (the median over the 20 brightest other
        stars, never saturated, of their flux relative to the night's median, in the middle
        aperture; see ``guards.comparison_light``) fell below ``1 - max_loss``. Removed frames are
        recorded in ``meta['rejected']`` with ``Flag.OUTLIER_REJECTED`` ("clouds: ...")."""
        if not 0 < float(max_loss) < 1:
            raise ValueError(f"max_loss={max_loss!r}: a fraction of the light, between 0 and 1")
        light = comparison_light(self.fluxes[self.shape[0] // 2], self.target,
                                 saturated=self.data.get("saturated"))
        if light is None:
            return self
        keep, reason = light_loss_frames(light, float(max_loss))
        return self.mask(keep, reason=reason, flag=Flag.OUTLIER_REJECTED) if not keep.all() else self

    def outlier_guard(self, *, sigma: float = GUARD_SIGMA, window: int = GUARD_WINDOW) -> "Fluxes":
        """Remove frames whose target ratio is more than ``sigma`` robust sigmas from its
        ``window`` neighbours in time (differential Fluxes only; the reason says when the
        comparisons disagree on that frame too).

        The neighbours' prediction follows smooth signals (transits, eclipses) and the noise is
        the local one, or the frame's own error scaled to it where larger (a clouded frame; see
        ``guards.neighbour_deviation``); the ensemble's own series is its
        weighted comparisons over their weighted median (``guards.ensemble_error``): a frame
        where a comparison jumped is the ensemble's, not the target's. Removed frames get
        ``Flag.OUTLIER_REJECTED`` ("target outlier: 7.3 sigma from its neighbours (> 5)")."""
        if "weights_all" not in self.meta:
            raise ValueError("outlier_guard needs differential Fluxes (after autodiff or diff)")
        if not float(sigma) > 0 or int(window) < 5:
            raise ValueError(f"sigma={sigma!r}, window={window!r}: sigma > 0 and window >= 5 frames")
        ap = self.aperture
        ens = ensemble_error(self.raw.fluxes[ap], np.asarray(self.meta["weights_all"])[ap])
        keep, reason = target_outliers(self.flux, ens, self.time, sigma=float(sigma), window=int(window),
                                       errors=self.error)
        return self.mask(keep, reason=reason, flag=Flag.OUTLIER_REJECTED) if not keep.all() else self

    # ------------------------------------------------------------------ differential photometry
    def _frames(self):
        return usable_frames(self.fluxes, self.target)

    def autodiff(self, *, max_comps: int = 20, iterations: int = 50, reject: float = 1.5,
                 exclude=(), method: str = "p2p", dt: float | None = None,
                 saturation: float | None = None, _flat: bool = True) -> "Fluxes":
        """Automatic differential photometry (Broeg et al. 2005 ensemble, best aperture).

        Comparison candidates are the ``max_comps`` brightest stars that are not the target, not in
        ``exclude``, never saturated (``data['saturated']``, from the raw pixels, in any frame;
        without it ``data['peak'] >= saturation``, default ``meta['saturation']``) and finite in
        every usable frame but those where an unrepaired cosmic-ray hit left them unmeasured
        (``data['aperture_flags']`` COSMIC: they leave that frame's ensemble only, the weights
        renormalised over the others). They are weighted, per aperture,
        by the inverse variance of their light curve against the weighted ensemble of the others,
        iterated (at most ``iterations`` times); comparisons noisier than ``reject`` x the fitted
        noise model are dropped. The aperture minimising the target's scatter (``method``: "p2p",
        "binned" with ``dt`` days, or "std"; plus, with ``data['fwhm']``, its trend with the seeing
        relative to a small good aperture) is chosen among those measuring the target on
        (nearly) every frame (see ``aperture_choice.best_aperture``); frames where the chosen aperture of
        the target could not be measured get TARGET_NEAR_EDGE, TARGET_MASKED or TARGET_SATURATED
        (from ``data['aperture_flags']``). Returns differential Fluxes: every star and
        aperture divided by its ensemble (see ``ensemble.differential``), with ``meta`` holding
        ``comparisons``, ``weights``, ``weights_all``, ``aperture``, ``aperture_radius``, ``raw``,
        ``scatter`` (per aperture) and ``rejected_comparisons``.

        Before that, two things the measured fluxes carry and no aperture removes: a star other
        than the target whose flux alone jumps on one frame (an unrepaired cosmic-ray hit on its
        core, ``ensemble.single_frame_jumps``) leaves that frame's ensemble, as a masked hit does
        (``comparison_jumps`` counts them in the middle aperture); and when the stars move on
        the detector (a re-centring jump, a drift) across a flat-field residual (vignetting on a
        night without flats), every star's flux, the target's included, is divided by the
        quadratic surface their light reveals (``ensemble.flat_residual``, used only on a night
        without flat field, ``meta['flat_fielded'] is False`` as the runner sets it, and when
        significant: ``flat_residual`` in ``meta``). ``raw`` keeps the fluxes as measured.
        """
        if max_comps < 1:
            raise ValueError("max_comps must be >= 1")
        frames = self._frames()
        if not frames.any():
            raise ValueError("the target has no finite positive flux in any frame")
        sat = self.meta.get("saturation") if saturation is None else saturation
        excused = self._hit_frames()
        # a comparison's frame with an unrepaired hit (its flux alone jumps) leaves that frame's
        # ensemble, as a masked hit does: one frame does not cost it the night's weight
        jumps = single_frame_jumps(self.fluxes, target=self.target, frames=frames)
        flat = None
        # only on a night known to have no flat: with a flat (or unknown: the API) the residual
        # fit found 'vignetting' in the simulated doughnut nights' aperture noise (2.6-9x their floor)
        if _flat and self.meta.get("flat_fielded") is False and "x" in self.data and "y" in self.data:
            flat = flat_residual(self.fluxes, self.data["x"], self.data["y"], target=self.target,
                                 frames=frames, skip=jumps)
        if flat is not None:  # every star's light as if it had stayed where it was
            factor, chi2 = flat
            fixed = self._replace(fluxes=self.fluxes / factor, errors=self.errors / factor)
            fixed.meta["flat_residual"] = {"chi2": chi2, "range": float(np.ptp(np.log(factor)))}
            out = fixed.autodiff(max_comps=max_comps, iterations=iterations, reject=reject,
                                 exclude=exclude, method=method, dt=dt, saturation=saturation,
                                 _flat=False)
            out.meta["raw"] = self.raw  # the fluxes measured, as measured
            return out
        if jumps.any():
            src = self._replace(fluxes=np.where(jumps, np.nan, self.fluxes))
            excused = jumps if excused is None else excused | jumps
            out = src._autodiff(frames, excused, sat, max_comps=max_comps, iterations=iterations,
                                reject=reject, exclude=exclude, method=method, dt=dt,
                                jumps=int(jumps[self._middle_aperture(frames)].sum()))
            out.meta["raw"] = self.raw
            return out
        return self._autodiff(frames, excused, sat, max_comps=max_comps, iterations=iterations,
                              reject=reject, exclude=exclude, method=method, dt=dt, jumps=0)

    def _middle_aperture(self, frames) -> int:
        """The middle aperture with usable frames (for counts in the metadata)."""
        n_ap = self.shape[0]
        return n_ap // 2 if frames[n_ap // 2].any() else int(np.argmax(frames.sum(axis=-1)))

    def _autodiff(self, frames, excused, sat, *, max_comps, iterations, reject, exclude, method,
                  dt, jumps) -> "Fluxes":
        comps = select_comparisons(
            self.fluxes, target=self.target, frames=frames, peak=self.data.get("peak"),
            saturation=None if sat is None else float(sat), saturated=self.data.get("saturated"),
            max_comps=int(max_comps), exclude=exclude, excused=excused)
        if not comps.any():
            raise ValueError("no usable comparison star (all saturated, non-finite or excluded)")
        weights, info = weights_broeg(self.fluxes, self.errors, comps=comps, frames=frames,
                                      iterations=int(iterations), reject=reject, excused=excused)
        rejected = [int(i) for i in np.flatnonzero(info["rejected"].any(axis=0))]
        return self._differential(weights, frames, method=method, dt=dt,
                                  extra={"method": "broeg2005", "iterations": info["iterations"],
                                         "rejected_comparisons": rejected,
                                         "comparison_scatter": info["sigma"],
                                         "comparison_jumps": jumps})

    def _hit_frames(self):
        """(n_apertures, n_stars, n_frames) True where an unrepaired cosmic-ray hit left the
        aperture unmeasured (``data['aperture_flags']`` COSMIC bit); None without the flags."""
        from ..algorithms.apertures import COSMIC

        bits = self.data.get("aperture_flags")
        if bits is None or np.shape(bits) != self.fluxes.shape:
            return None
        return (np.asarray(bits) & COSMIC) != 0

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
        d, e = differential(self.fluxes, self.errors, weights, frames=frames)
        idx, metric = best_aperture(d[:, self.target], time=self.time, method=method, dt=dt,
                                    frames=frames, seeing=self._seeing(), errors=e[:, self.target])
        by = "snr" if np.isfinite(np.where(frames, d[:, self.target], np.nan)).sum(axis=-1).max(initial=0) < 3 \
            else method
        if aperture is not None:
            idx = int(aperture) % self.shape[0]
        w = weights[idx]
        order = [int(i) for i in np.argsort(-w, kind="stable") if w[i] > 0]
        meta = dict(self.meta)
        meta.update(extra or {})
        meta.update(comparisons=order, weights=[float(w[i]) for i in order], weights_all=weights,
                    aperture=idx, scatter=metric, raw=self.raw,
                    aperture_by="given" if aperture is not None else by)
        radius = float(nanmedian(np.atleast_1d(self.apertures[idx])))
        flags, issues = unmeasured_frames(self.data.get("aperture_flags"), idx, self.target,
                                          np.isfinite(d[idx, self.target]), self.files, radius)
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

    # ------------------------------------------------------------------ binning
    def bin(self, dt: float, estimate_error: bool = True) -> "Fluxes":
        """Fluxes averaged in time bins of ``dt`` days (bins start at the first frame).

        ``estimate_error=True``: error = scatter within the bin / sqrt(n) (propagated error when a
        bin holds one point); otherwise sqrt(sum(error^2)) / n. Per-frame data are averaged, flags
        OR-ed; ``data['n_binned']`` holds the number of frames per bin and ``files`` the first file.
        """
        t, f, e, _ = binned(self.time, self.fluxes, dt, error=self.errors,
                            estimate_error=estimate_error)
        order, starts = bin_edges(self.time, dt)
        counts = np.diff(np.r_[starts, self.time.size])
        data = {}
        for k, v in self.data.items():
            if np.issubdtype(np.asarray(v).dtype, np.number) or np.asarray(v).dtype == bool:
                data[k] = binned(self.time, np.asarray(v, float), dt)[1]
        data["n_binned"] = counts
        flags = np.bitwise_or.reduceat(self.flags[order], starts)
        aps = self.apertures
        if aps.ndim == 2:
            aps = binned(self.time, aps, dt)[1]
        meta = dict(self.meta, binned=float(dt))
        return self._replace(time=t, fluxes=f, errors=e, apertures=aps, data=data, flags=flags,
                             files=self.files[order][starts], meta=meta)

    # ------------------------------------------------------------------ outputs
    def plot(self, ax=None, *, binned: float | None = None, **kwargs):
        """Target light curve (chosen aperture) as points, with an optional ``binned`` (days) overlay."""
        from ..figures.plots import plot_lightcurve
        return plot_lightcurve(self, ax=ax, binned_dt=binned, errorbars=False, **kwargs)

    def errorbar(self, ax=None, *, binned: float | None = None, **kwargs):
        """Target light curve (chosen aperture) with error bars, optional ``binned`` overlay."""
        from ..figures.plots import plot_lightcurve
        return plot_lightcurve(self, ax=ax, binned_dt=binned, errorbars=True, **kwargs)

    def to_table(self):
        """astropy Table of the light-curve schema (``reduce.lightcurve.tables.LIGHTCURVE_COLUMNS``).

        time, bjd_tdb, flux, flux_err (target, chosen aperture) and the per-frame columns; a
        quantity not measured is NaN. ``bjd_tdb`` comes from ``data['bjd_tdb']``, else from
        ``meta['target_ra'/'target_dec']`` (and ``meta['site']``: latitude, longitude, elevation).
        ``meta`` holds target, aperture, aperture_radius, comparisons, weights, schema version.
        """
        from .tables import fluxes_table

        return fluxes_table(self)

    def save(self, path, *, header: dict | None = None) -> Path:
        """Write the light-curve product as .csv, .ecsv or .fits (by extension), atomically.

        The same writer as ``reduce run`` (:mod:`reduce.lightcurve.tables`): the CSV is plain, the
        ECSV the same table below a ``# `` block with units, schema and meta (``Table.read(path)``;
        ``pd.read_csv(path, comment='#')``); the FITS file holds LIGHTCURVE, STARS, FLUXES/ERRORS
        (the raw fluxes, apertures x stars x frames), APERTURES and WEIGHTS. ``header`` adds
        primary-header values (OBJECT, TELESCOP, FILTER, ...). A missing folder raises ``OutputError``.
        """
        from .tables import save_fluxes

        return save_fluxes(self, path, header=header)

    @classmethod
    def load(cls, path) -> "Fluxes":
        """The raw Fluxes of a FITS light-curve product (``save`` or ``reduce run``): every star
        at every aperture, per-frame columns as ``data``; ``meta`` keeps the comparison stars,
        weights (``weights``, and ``stored_weights``: apertures x stars), the chosen aperture and
        the LIGHTCURVE table (``table``): ``diff(f.comparisons, f.weights, aperture=f.aperture)``
        redoes the light curve."""
        from .fitsproduct import read_fluxes

        return cls(**read_fluxes(path))
