"""The bias pedestal still in a group's pixels, so that the CCD equation counts only the sky above
it as photons (a 12-bit camera's 365 ADU bias read as sky made HAT-P-32's errors 2.4x its scatter).

In order: taken off by the calibration (bias frames, an overscan, a dark holding the bias) -> 0;
``bias_level:`` of the instrument in the config; else estimated on the reference frame from its
sky noise: the sky's pixel variance is ``S / g + (RN / g)^2`` (ADU^2) for S ADU of sky above the
bias, so ``pedestal = sky - (g var - RN^2 / g)``. A low percentile of the frame, the other
candidate, measures vignetting and cold edge rows, not the bias (HAT-P-32: 66-90 ADU under the
sky, for 3 ADU of real sky). The choice is logged and kept in ``ref.computed['bias_pedestal']``.
"""
from __future__ import annotations

import logging

import numpy as np

__all__ = ["bias_pedestal"]

log = logging.getLogger("reduce.run")


def _positive(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) and v > 0 else None


def bias_pedestal(ref, name: str) -> dict:
    """``{"adu", "how", "estimated"}``: the pedestal left in the calibrated pixels of the group
    whose reference is ``ref`` (see the module docstring), logged under ``name``."""
    removed = ref.computed.get("bias_removed")
    inst = getattr(ref, "instrument", None)
    configured = getattr(inst, "bias_level", None)
    if removed:
        out = {"adu": 0.0, "how": f"taken off by the {removed}", "estimated": False}
    elif configured is not None:
        out = {"adu": float(configured), "how": "`bias_level:` of the config", "estimated": False}
    else:
        out = _from_sky_noise(ref)
    ref.computed["bias_pedestal"] = out
    sky = _positive(ref.bkg)
    above = "" if sky is None else f" ({max(sky - out['adu'], 0.0):.1f} ADU of sky above it)"
    log.info("%s: bias pedestal %.1f ADU, %s: the CCD equation counts only the sky above it%s",
             name, out["adu"], out["how"], above)
    return out


def _from_sky_noise(ref) -> dict:
    """The pedestal that makes the CCD equation's sky noise the reference's measured one."""
    sky, rms = _positive(ref.bkg), _positive(ref.bkg_rms)
    gain = _positive(ref.gain) or 1.0
    rn = _positive(ref.read_noise) or 0.0
    how = ("estimated from the reference frame's sky noise (no bias frames, no overscan, no "
           "`bias_level:` in the config)")
    if sky is None or rms is None:
        return {"adu": 0.0, "how": "unknown (no sky level measured): 0 assumed", "estimated": True}
    photons = gain * rms * rms - rn * rn / gain  # ADU of sky above the bias
    return {"adu": float(np.clip(sky - photons, 0.0, sky)), "how": how, "estimated": True}
