"""The planet file of ``reduce fit``: ephemeris, geometry and limb darkening, checked on reading.

Each geometric key is a number (held fixed) or ``[value, sigma]`` (fitted under a Gaussian prior):
a single night rarely constrains a/Rs and the inclination, a literature value with its error does.

.. code-block:: yaml

    name: HAT-P-32 b
    period: 2.1500082          # d (period_err: optional, for the O-C error)
    t0: 2455867.402743         # BJD_TDB of a mid-transit (t0_err: optional)
    a_rs: 6.05                 # or [6.05, 0.04]
    inc: 88.9                  # deg, or b: 0.1 (impact parameter); a number or [value, sigma]
    rp_rs: 0.1508              # first guess; always fitted
    u: [0.40, 0.25]            # quadratic limb darkening, or: fit (uninformative priors)
    ecc: 0.0                   # optional
    w: 90.0                    # deg, optional
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..model.errors import UsageError

__all__ = ["Planet", "load_planet", "EXAMPLE"]

EXAMPLE = """\
name: HAT-P-32 b
period: 2.1500082      # d
t0: 2455867.402743     # BJD_TDB of a mid-transit
a_rs: 6.05             # a number (fixed) or [value, sigma] (fitted, Gaussian prior)
inc: 88.9              # deg; or b: impact parameter
rp_rs: 0.1508          # first guess (always fitted)
u: [0.40, 0.25]        # quadratic limb darkening; or: fit
# ecc: 0.0, w: 90.0, period_err: 1.0e-7, t0_err: 0.0002 (optional)
"""

_KNOWN = {"name", "period", "period_err", "t0", "t0_err", "a_rs", "inc", "b", "rp_rs", "u", "ecc", "w"}


@dataclass
class Planet:
    """What the fit needs of a planet: each prior is (value, sigma), sigma 0 when held fixed."""

    period: float
    t0: float
    a_rs: tuple[float, float]
    inc: tuple[float, float]
    rp_rs: float
    u: tuple[float, float] | None      # None: fitted (uniform q1, q2 of Kipping 2013)
    name: str = ""
    ecc: float = 0.0
    w: float = 90.0
    period_err: float = 0.0
    t0_err: float = 0.0
    notes: list = field(default_factory=list)


def _number(data: dict, key: str, *, positive: bool = False, where: str) -> float:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"{where}: {key} must be a number, got {value!r}")
    if positive and value <= 0:
        raise UsageError(f"{where}: {key} must be positive, got {value!r}")
    return float(value)


def _prior(data: dict, key: str, where: str) -> tuple[float, float]:
    """A number (fixed) or [value, sigma]."""
    value = data[key]
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value) \
                or not all(math.isfinite(v) for v in value) or value[1] < 0:
            raise UsageError(f"{where}: {key} must be a number or [value, sigma >= 0], got {value!r}")
        return float(value[0]), float(value[1])
    return _number(data, key, where=where), 0.0


def load_planet(path) -> Planet:
    """Read and check a planet file (YAML, safe_load); a clear error names any bad key."""
    import yaml

    where = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise UsageError(f"cannot read the planet file {where}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise UsageError(f"{where} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{where}: expected keys such as period, t0, a_rs, inc, rp_rs, u (see `reduce fit --help`)")
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_KNOWN))}")
    missing = [k for k in ("period", "t0", "a_rs", "rp_rs", "u") if k not in data]
    if "inc" not in data and "b" not in data:
        missing.append("inc (or b)")
    if missing:
        raise UsageError(f"{where}: missing {', '.join(missing)} (see `reduce fit --help` for a complete file)")
    if "inc" in data and "b" in data:
        raise UsageError(f"{where}: give inc or b, not both")
    period = _number(data, "period", positive=True, where=where)
    t0 = _number(data, "t0", where=where)
    if t0 < 2_400_000:
        raise UsageError(f"{where}: t0 must be a full BJD_TDB (e.g. 2455867.402743), got {t0!r}")
    a_rs = _prior(data, "a_rs", where)
    if a_rs[0] <= 1:
        raise UsageError(f"{where}: a_rs must be > 1 (stellar radii), got {a_rs[0]!r}")
    ecc = _number(data, "ecc", where=where) if "ecc" in data else 0.0
    if not 0 <= ecc < 1:
        raise UsageError(f"{where}: ecc must be in [0, 1), got {ecc!r}")
    if "b" in data:
        b, sb = _prior(data, "b", where)
        if not 0 <= b < a_rs[0]:
            raise UsageError(f"{where}: b must be in [0, a_rs), got {b!r}")
        inc = math.degrees(math.acos(b / a_rs[0]))
        inc = (inc, math.degrees(sb / (a_rs[0] * math.sin(math.radians(inc)))) if sb else 0.0)
    else:
        inc = _prior(data, "inc", where)
        if not 0 < inc[0] <= 90:
            raise UsageError(f"{where}: inc must be in (0, 90] degrees, got {inc[0]!r}")
    rp = _number(data, "rp_rs", positive=True, where=where)
    if rp >= 1:
        raise UsageError(f"{where}: rp_rs must be < 1 (a planet smaller than its star), got {rp!r}")
    u = data["u"]
    if isinstance(u, str) and u.strip().lower() == "fit":
        u = None
    elif isinstance(u, (list, tuple)) and len(u) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in u):
        u = (float(u[0]), float(u[1]))
    else:
        raise UsageError(f"{where}: u must be two numbers (quadratic limb darkening) or 'fit', got {u!r}")
    return Planet(period=period, t0=t0, a_rs=a_rs, inc=inc, rp_rs=rp, u=u, name=str(data.get("name", "") or ""),
                  ecc=ecc, w=_number(data, "w", where=where) if "w" in data else 90.0,
                  period_err=_number(data, "period_err", where=where) if "period_err" in data else 0.0,
                  t0_err=_number(data, "t0_err", where=where) if "t0_err" in data else 0.0)
