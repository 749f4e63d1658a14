"""The simulator's fixed conventions: signals, dtypes, site, camera, time origin, JD <-> ISO.

Shared by the scene, the renderer and the truth; the headers carry times at millisecond precision,
so the scene's times are rounded through :func:`jd_to_iso` / ``_iso_to_jd`` exactly as written.
"""
from __future__ import annotations

from datetime import datetime, timedelta

SIGNALS = ("sine", "transit", "flat")
DTYPES = ("uint16", "float32")
SITE = {"latitude": -24.6272, "longitude": -70.4045, "elevation": 2635.0}  # east-positive degrees
NIGHT_START = "2024-03-16T01:00:00.000"  # UTC start of the first light of simulate_night
READOUT_S = 10.0        # dead time between exposures (s)
MIN_SIZE = 64
TWILIGHT_SKY_ADU = 24700.0  # sky at the first light of a night that starts in twilight (option twilight)
DOUGHNUT_DIAMETER = 12.0  # px: outer diameter of a doughnut star's ring when fwhm is not given
PSFS = ("moffat", "doughnut")
BAYER_PATTERNS = ("RGGB", "GRBG", "GBRG", "BGGR")  # 2x2 colour filter arrays, from the top-left pixel
BAYER_SENSITIVITY = (0.6, 1.0, 0.5)  # R, G, B response relative to green (option bayer)
BAYER_COLOUR = 0.35  # a star's colour c in [-1, 1] scales R by exp(+k c) and B by exp(-k c)
NEIGHBOUR_FLUX = 3.0  # flux of the saturated neighbour (option saturated_neighbour), x the target's
_J2000 = datetime(2000, 1, 1, 12, 0, 0)
_CAMERA = {"gain": 1.5, "read_noise": 9.0, "saturation": 65535.0, "extinction_coefficient": 0.15,
           "filter": "V", "telescope": "SIM-60", "instrument": "SimCam", "object": "SIM-1"}


def _iso_to_jd(iso: str) -> float:
    return 2451545.0 + (datetime.fromisoformat(iso) - _J2000) / timedelta(days=1)


def jd_to_iso(jd: float) -> str:
    """ISO UTC string (millisecond precision) of a JD (UTC scale, no leap-second smearing)."""
    ms = round((jd - 2451545.0) * 86400000.0)
    return (_J2000 + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")
