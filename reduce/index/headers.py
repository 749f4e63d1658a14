"""Read FITS headers fast (never pixel data) and describe a frame from its header.

Plain and gzipped FITS are parsed straight from their 2880-byte header blocks (about ten times
faster than astropy, which the scan of a large night needs); Rice-compressed ``.fz`` images go
through astropy. :func:`describe` turns a header into a :class:`FrameInfo`, applying the
instrument's keyword roles and the heuristics for cameras that label frames badly.
"""
from __future__ import annotations

import gzip
import math
import os
import re
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta, timezone
from typing import Any

from ..config import DEFAULT_INSTRUMENT, Config, Instrument

__all__ = ["UnreadableFile", "NotAnImage", "FrameInfo", "read_header", "describe", "frame_info", "site", "is_fits_name",
           "jd_from_datetime", "datetime_from_jd"]

BLOCK = 2880
CARD = 80
_FITS_EXTS = (".fits", ".fit", ".fts")
_JD_J2000 = 2451545.0
_J2000 = datetime(2000, 1, 1, 12, tzinfo=timezone.utc)


class UnreadableFile(Exception):
    """The file cannot be used as a FITS image; the message says why."""


class NotAnImage(UnreadableFile):
    """A valid FITS file that holds tables but no image (e.g. a light-curve table): not an error."""


def is_fits_name(name: str) -> bool:
    """True for ``.fits .fit .fts`` (any case), optionally gzipped (``.gz``), and any ``.fz``."""
    low = name.lower()
    if low.endswith(".fz"):
        return True
    if low.endswith(".gz"):
        low = low[:-3]
    return low.endswith(_FITS_EXTS)


# ---------------------------------------------------------------- raw header parsing

class RawHeader(dict):
    """Header keywords -> values from raw cards (first occurrence wins, upper-case keys).

    Values are kept as their raw text and parsed on first access (a scan asks for a few dozen
    keywords of which most are absent). Quacks like :class:`astropy.io.fits.Header` for ``get``,
    ``[]`` and ``in``, which is all :func:`describe` and :meth:`Config.instrument_for` use.
    """

    def get(self, key, default=None):
        raw = dict.get(self, key)
        if raw is None:
            if key.isupper() or not dict.__contains__(self, key.upper()):
                return default
            key = key.upper()
            raw = dict.__getitem__(self, key)
        if isinstance(raw, _Raw):
            raw = _parse_value(raw)
            dict.__setitem__(self, key, raw)
        return default if raw is None else raw

    def __getitem__(self, key):
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __contains__(self, key):
        return dict.__contains__(self, str(key).upper())


class _Raw(str):
    """An unparsed card value field."""


_MISSING = object()


def _parse_value(v: str) -> Any:
    """Value of one card's value field (after ``= ``): str, bool, int, float or None."""
    v = v.lstrip()
    if v.startswith("'"):
        out, i = [], 1
        while True:
            j = v.find("'", i)
            if j < 0:
                out.append(v[i:])
                break
            if v[j + 1:j + 2] == "'":
                out.append(v[i:j + 1])
                i = j + 2
                continue
            out.append(v[i:j])
            break
        return "".join(out).rstrip()
    tok = v.split("/", 1)[0].strip()
    if not tok:
        return None
    if tok == "T":
        return True
    if tok == "F":
        return False
    try:
        return int(tok)
    except ValueError:
        pass
    try:
        return float(tok.replace("D", "E").replace("d", "e"))
    except ValueError:
        return tok


def _parse_cards(text: str) -> RawHeader:
    """Split the 80-character cards of one header (up to END) into a :class:`RawHeader`."""
    cards: dict = {}
    last = None
    for i in range(0, len(text), CARD):
        card = text[i:i + CARD]
        key = card[:8].rstrip()
        if card[8:10] == "= " and key != "HIERARCH":
            if key not in cards:
                cards[key] = _Raw(card[10:])
                last = key
        elif key == "END":
            break
        elif key == "CONTINUE" and last is not None:
            prev = _parse_value(cards[last]) if isinstance(cards[last], _Raw) else cards[last]
            if isinstance(prev, str) and prev.endswith("&"):
                cards[last] = prev[:-1] + str(_parse_value(card[8:]) or "")
        elif key == "HIERARCH":
            eq = card.find("=")
            hkey = card[9:eq].strip().upper() if eq > 0 else ""
            if hkey and hkey not in cards:
                cards[hkey] = _Raw(card[eq + 1:])
                last = hkey
    return RawHeader(cards)


def _read_header_block(f) -> str | None:
    """Text of the next header (a multiple of 2880 bytes, ending with END), None at a clean EOF."""
    chunks = []
    while True:
        block = f.read(BLOCK)
        if not block:
            if chunks:
                raise UnreadableFile("truncated header: no END card")
            return None
        if len(block) < BLOCK:
            raise UnreadableFile("truncated header: incomplete 2880-byte block")
        try:
            text = block.decode("ascii")
        except UnicodeDecodeError:
            raise UnreadableFile("not a FITS file: header is not ASCII text") from None
        chunks.append(text)
        for i in range(0, BLOCK, CARD):
            if text[i:i + 8] == "END     ":
                return "".join(chunks)
        if len(chunks) > 2000:
            raise UnreadableFile("header has no END card")


def _data_bytes(cards: RawHeader) -> int:
    """Size in bytes of the data unit described by a header (without padding)."""
    naxis = int(cards.get("NAXIS") or 0)
    if naxis == 0:
        return 0
    n = 1
    for k in range(1, naxis + 1):
        n *= int(cards.get(f"NAXIS{k}") or 0)
    n = (n + int(cards.get("PCOUNT") or 0)) * int(cards.get("GCOUNT") or 1)
    return abs(int(cards.get("BITPIX") or 8)) // 8 * n


def _image_shape(cards: RawHeader, prefix: str = "") -> tuple[int, int] | None:
    """(height, width) when the header describes a 2-D image (extra axes of length 1 allowed)."""
    naxis = int(cards.get(prefix + "NAXIS") or 0)
    if naxis < 2:
        return None
    if any(int(cards.get(f"{prefix}NAXIS{k}") or 1) > 1 for k in range(3, naxis + 1)):
        return None  # a cube (e.g. reduce's own flux tables) is not a frame
    w, h = int(cards.get(prefix + "NAXIS1") or 0), int(cards.get(prefix + "NAXIS2") or 0)
    return (h, w) if w > 0 and h > 0 else None


class _Compressed(Exception):
    """A tile-compressed image: astropy reads that header."""


def _scan_stream(f, size: int | None) -> tuple[str, RawHeader, int, tuple[int, int]]:
    """Walk HDUs of an open binary stream until the first image; (text, cards, hdu, shape)."""
    head = f.read(BLOCK)
    if not head:
        raise UnreadableFile("empty file (0 bytes)")
    if not head.startswith(b"SIMPLE  ="):
        raise UnreadableFile("not a FITS file (does not start with SIMPLE)")
    f.seek(0)
    offset, index, tables = 0, 0, 0
    while True:
        text = _read_header_block(f)
        if text is None:
            break
        cards = _parse_cards(text)
        offset += len(text)
        nbytes = _data_bytes(cards)
        padded = -(-nbytes // BLOCK) * BLOCK
        if size is not None and offset + nbytes > size:
            raise UnreadableFile(f"truncated: HDU {index} needs {offset + nbytes} bytes, file has {size}")
        xt = str(cards.get("XTENSION") or "").strip().upper()
        if xt == "BINTABLE" and cards.get("ZIMAGE") is True:
            raise _Compressed()
        shape = _image_shape(cards)
        if shape is not None and xt in ("", "IMAGE"):
            return text, cards, index, shape
        tables += xt in ("BINTABLE", "TABLE") or int(cards.get("NAXIS") or 0) > 2
        if padded:
            f.seek(padded, os.SEEK_CUR)
        offset += padded
        index += 1
        if size is not None and offset >= size:
            break
    if tables:
        raise NotAnImage(f"no 2-D image: FITS table(s) or cube(s) only ({tables})")
    raise UnreadableFile("no image data (header only)")


def _open_error(e: OSError) -> UnreadableFile:
    if isinstance(e, PermissionError):
        return UnreadableFile("permission denied")
    if isinstance(e, IsADirectoryError):
        return UnreadableFile("is a directory")
    if isinstance(e, FileNotFoundError):
        return UnreadableFile("file not found (broken link?)")
    return UnreadableFile(f"cannot read: {e.strerror or e}")


def _read_raw(path: str) -> tuple[Any, int, tuple[int, int], str | None]:
    """Fast path: (cards, hdu, shape, header text or None when read through astropy)."""
    try:
        if path.lower().endswith(".gz"):
            with gzip.open(path, "rb") as f:
                try:
                    text, cards, hdu, shape = _scan_stream(f, None)
                except (EOFError, gzip.BadGzipFile, OSError) as e:
                    raise UnreadableFile(f"corrupt gzip stream: {e}") from None
            return cards, hdu, shape, text
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            text, cards, hdu, shape = _scan_stream(f, size)
        return cards, hdu, shape, text
    except _Compressed:
        header, hdu, shape = _read_with_astropy(path)
        return header, hdu, shape, None
    except OSError as e:
        raise _open_error(e) from None


def _read_with_astropy(path: str):
    """Header of the first image HDU through astropy (tile-compressed images)."""
    import warnings

    from astropy.io import fits
    size = os.path.getsize(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
                for i, hdu in enumerate(hdul):
                    if not getattr(hdu, "is_image", False):
                        continue
                    header = hdu.header
                    shape = _image_shape(header)
                    if shape is None:
                        continue
                    info = hdul.fileinfo(i)
                    if info and info["datLoc"] + info["datSpan"] - (BLOCK - 1) > size:
                        raise UnreadableFile(f"truncated: HDU {i} data extends past the end of the file")
                    return header.copy(), i, shape
    except UnreadableFile:
        raise
    except OSError as e:
        raise _open_error(e) if e.errno else UnreadableFile(f"unreadable FITS: {e}") from None
    except Exception as e:  # astropy raises many kinds on corrupt files
        raise UnreadableFile(f"unreadable FITS: {e}") from None
    raise UnreadableFile("no image data (header only)")


def read_header(path) -> tuple[Any, int, tuple[int, int]]:
    """(header, hdu index, (height, width)) of the first image HDU, reading headers only.

    Raises :class:`UnreadableFile` for empty, truncated, non-FITS, header-only or unreadable
    files. The header is an :class:`astropy.io.fits.Header`.
    """
    from astropy.io import fits
    cards, hdu, shape, text = _read_raw(os.fspath(path))
    if text is None:
        return cards, hdu, shape
    try:
        return fits.Header.fromstring(text), hdu, shape
    except Exception as e:
        raise UnreadableFile(f"invalid header: {e}") from None


# ---------------------------------------------------------------- the frame description

@dataclass
class FrameInfo:
    """What the index knows about one frame (from its header and file name).

    ``jd`` is the JD (UTC) at mid-exposure; ``date_obs`` the ISO UTC exposure start; ``night`` the
    local date at which the night began (frames between two local noons share one night).
    """

    path: str
    hdu: int
    type: str
    telescope: str
    instrument: str
    filter: str
    target: str
    exptime: float | None
    date_obs: str | None
    jd: float | None
    night: str | None
    width: int
    height: int
    ra: float | None = None
    dec: float | None = None
    airmass: float | None = None
    gain: float | None = None
    read_noise: float | None = None
    saturation: float | None = None
    bitpix: int | None = None
    bzero: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


FRAME_FIELDS = tuple(f.name for f in fields(FrameInfo))


def _first(header, keys) -> Any:
    for k in keys:
        v = header.get(k)
        if v is not None and not (isinstance(v, str) and not v.strip()):
            return v
    return None


def _text(v) -> str:
    if v is None or isinstance(v, bool):
        return ""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return " ".join(str(v).split())


def _number(v) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        x = float(str(v).strip().replace("D", "E")) if isinstance(v, str) else float(v)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def _sexagesimal(v) -> tuple[float | None, bool]:
    """(value, was_sexagesimal) of a number or a 'dd:mm:ss' / 'dd mm ss' / '12h30m' string."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return _number(v), False
    s = str(v).strip().lower()
    if not s:
        return None, False
    parts = re.split(r"[:\s hdm°'\"s]+", s.strip(" s\""))
    parts = [p for p in parts if p]
    if len(parts) == 1:
        return _number(parts[0]), False
    try:
        nums = [abs(float(p)) for p in parts[:3]]
    except ValueError:
        return None, False
    value = nums[0] + sum(n / 60 ** (i + 1) for i, n in enumerate(nums[1:]))
    return (-value if s.startswith("-") else value), True


def _ra_deg(v) -> float | None:
    x, sexa = _sexagesimal(v)
    if x is None:
        return None
    if sexa and x < 24:
        x *= 15.0
    return x if 0 <= x < 360.0001 else None


def _dec_deg(v) -> float | None:
    x, _ = _sexagesimal(v)
    return x if x is not None and -90 <= x <= 90 else None


def jd_from_datetime(dt: datetime) -> float:
    """JD (UTC) of an aware or naive-UTC datetime."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return _JD_J2000 + (dt - _J2000).total_seconds() / 86400.0


def datetime_from_jd(jd: float) -> datetime:
    """Aware UTC datetime of a JD (UTC)."""
    return _J2000 + timedelta(days=jd - _JD_J2000)


_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?"
                  r"\s*(Z|UTC?|[+-]\d{2}(?::?\d{2})?)?$", re.I)
_OLD = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{2})$")  # pre-2000 FITS 'DD/MM/YY'
_HMS = re.compile(r"^(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d+))?)?$")


def _parse_date(value) -> tuple[datetime | None, bool, timedelta | None]:
    """(naive datetime, has_time, UTC offset or None) of a DATE-OBS-like value."""
    s = str(value).strip()
    m = _ISO.match(s)
    if m:
        y, mo, d, hh, mm, ss, frac, tz = m.groups()
        try:
            dt = datetime(int(y), int(mo), int(d))
        except ValueError:
            return None, False, None
        if hh is None:
            return dt, False, None
        secs = int(hh) * 3600 + int(mm) * 60 + int(ss or 0) + (float("0." + frac) if frac else 0.0)
        offset = None
        if tz and tz.upper() not in ("Z", "UT", "UTC"):
            digits = tz[1:].replace(":", "")
            minutes = int(digits[:2]) * 60 + (int(digits[2:4]) if len(digits) >= 4 else 0)
            offset = timedelta(minutes=minutes if tz[0] == "+" else -minutes)
        elif tz:
            offset = timedelta(0)
        return dt + timedelta(seconds=secs), True, offset
    m = _OLD.match(s)
    if m:
        d, mo, y = (int(x) for x in m.groups())
        try:
            return datetime(1900 + y, mo, d), False, None
        except ValueError:
            return None, False, None
    return None, False, None


def _parse_time_of_day(value) -> float | None:
    """Seconds after midnight from 'hh:mm:ss[.fff]' or decimal hours."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) * 3600 if 0 <= value < 24 else None
    m = _HMS.match(str(value).strip())
    if not m:
        return None
    hh, mm, ss, frac = m.groups()
    return int(hh) * 3600 + int(mm) * 60 + int(ss or 0) + (float("0." + frac) if frac else 0.0)


def _header_time(header, inst: Instrument) -> tuple[datetime | None, timedelta | None]:
    """UTC datetime (naive) that the header's time keywords give, and the DATE-OBS UTC offset."""
    date_keys = [k for k in inst.keys("date_obs") if k != "DATE"]
    fallback_date = None
    for key in date_keys:
        v = header.get(key)
        if v is None or not str(v).strip():
            continue
        dt, has_time, offset = _parse_date(v)
        if dt is None:
            continue
        if not has_time:
            t = _first(header, inst.keys("time_obs"))
            secs = _parse_time_of_day(t) if t is not None else None
            if secs is None:
                fallback_date = fallback_date or dt
                continue
            dt = dt + timedelta(seconds=secs)
        if offset is None and inst.timezone_offset_hours is not None:
            offset = timedelta(hours=inst.timezone_offset_hours)
        return (dt - offset if offset is not None else dt), offset
    for role, base in (("jd", 0.0), ("mjd", 2400000.5)):
        x = _number(_first(header, inst.keys(role)))
        if x is not None and x > 0:
            return datetime_from_jd(x + base).replace(tzinfo=None), None
    if "DATE" in inst.keys("date_obs") and fallback_date is None:
        v = header.get("DATE")
        dt, _, offset = _parse_date(v) if v is not None else (None, False, None)
        if dt is not None:
            return (dt - offset if offset is not None else dt), offset
    return fallback_date, None


def _longitude(header, inst: Instrument) -> float | None:
    """Site longitude, east-positive degrees: the instrument's, else the header's."""
    if inst.longitude is not None:
        return inst.longitude
    v = _first(header, inst.keys("longitude"))
    x, _ = _sexagesimal(v) if v is not None else (None, False)
    if x is None or not -360 <= x <= 360:
        return None
    return -x if inst.longitude_positive_west else x


def site(header, inst: Instrument | None = None) -> tuple[float | None, float | None, float | None]:
    """(latitude, longitude east-positive, elevation m) of the observatory: each value from the
    instrument configuration, else from the header (numbers or sexagesimal strings)."""
    inst = inst or DEFAULT_INSTRUMENT

    def value(role, configured):
        if configured is not None:
            return configured
        v = _first(header, inst.keys(role))
        return _sexagesimal(v)[0] if v is not None else None

    return (value("latitude", inst.latitude), _longitude(header, inst),
            value("elevation", inst.elevation))


def night_of(utc: datetime, *, longitude: float | None = None, offset: timedelta | None = None) -> str:
    """Local date at which the night containing ``utc`` began (the day before local noon)."""
    if longitude is not None:
        local = utc + timedelta(hours=((longitude + 180) % 360 - 180) / 15.0)
    elif offset is not None:
        local = utc + offset
    else:
        local = utc
    return (local - timedelta(hours=12)).date().isoformat()


_PATTERNS: dict[int, tuple] = {}


def _filename_type(inst: Instrument, name: str) -> str | None:
    """Frame type named by a file or folder name (the instrument's compiled patterns, cached)."""
    entry = _PATTERNS.get(id(inst))
    if entry is None or entry[0] is not inst:
        compiled = [(t, re.compile(p)) for t in ("bias", "dark", "flat")
                    for p in inst.filename_patterns.get(t, ())]
        entry = _PATTERNS[id(inst)] = (inst, compiled)
    low = name.lower()
    for ftype, rx in entry[1]:
        if rx.search(low):
            return ftype
    return None


def _frame_type(header, path: str, inst: Instrument, exptime: float | None) -> str:
    """bias/dark/flat/light from IMAGETYP, the file (or folder) name and the exposure time.

    A calibration type in IMAGETYP is trusted; 'light' or no IMAGETYP yields to a file name (then
    folder name) that says bias/dark/flat; a zero-second dark or light is a bias.
    """
    declared = None
    v = _first(header, inst.keys("imagetyp"))
    if v is not None:
        declared = inst.type_from_value(str(v))
    if declared in (None, "light"):
        folder, name = os.path.split(path)
        named = _filename_type(inst, name) or _filename_type(inst, os.path.basename(folder))
        if named is not None:
            declared = named
    ftype = declared or "light"
    if ftype in ("light", "dark") and exptime is not None and exptime == 0:
        ftype = "bias"
    return ftype


def _default_saturation(bitpix, bzero) -> float | None:
    if bitpix == 8:
        return 255.0
    if bitpix == 16:
        return 65535.0 if bzero == 32768 else 32767.0
    if bitpix == 32:
        return 4294967295.0 if bzero == 2147483648 else 2147483647.0
    return None


def describe(header, path, instrument: Instrument | None = None, *, hdu: int = 0,
             shape: tuple[int, int] | None = None) -> FrameInfo:
    """Describe a frame from its header (astropy Header or any mapping with ``get``).

    Configured gain, read noise and saturation override the header's; the telescope is the
    matched instrument's name when one matches, else the header's TELESCOP/INSTRUME/OBSERVAT.
    """
    inst = instrument or DEFAULT_INSTRUMENT
    path = os.fspath(path)
    if shape is None:
        shape = _image_shape(header) or (0, 0)
    height, width = int(shape[0]), int(shape[1])
    exptime = _number(_first(header, inst.keys("exptime")))
    start, offset = _header_time(header, inst)
    jd = date_obs = night = None
    if start is not None:
        half = timedelta(seconds=(exptime or 0.0) / 2)
        if inst.time_reference == "mid":
            start = start - half
        jd = jd_from_datetime(start + half)
        date_obs = start.isoformat(timespec="milliseconds")
        if offset is None and inst.timezone_offset_hours is not None:
            offset = timedelta(hours=inst.timezone_offset_hours)
        night = night_of(start, longitude=_longitude(header, inst), offset=offset)
    telescope = inst.name if inst is not DEFAULT_INSTRUMENT and inst.name != "default" \
        else _text(_first(header, inst.keys("telescope")))
    bitpix = header.get("BITPIX")
    bzero = _number(header.get("BZERO"))
    bitpix = int(bitpix) if isinstance(bitpix, (int, float)) and not isinstance(bitpix, bool) else None
    saturation = inst.saturation if inst.saturation is not None else _number(
        _first(header, inst.keys("saturation")))
    return FrameInfo(
        path=path, hdu=int(hdu), type=_frame_type(header, path, inst, exptime),
        telescope=telescope, instrument=_text(_first(header, inst.keys("instrument"))),
        filter=_text(_first(header, inst.keys("filter"))),
        target=_text(_first(header, inst.keys("object"))),
        exptime=exptime, date_obs=date_obs, jd=jd, night=night, width=width, height=height,
        ra=_ra_deg(_first(header, inst.keys("ra"))), dec=_dec_deg(_first(header, inst.keys("dec"))),
        airmass=_number(_first(header, inst.keys("airmass"))),
        gain=inst.gain if inst.gain is not None else _number(_first(header, inst.keys("gain"))),
        read_noise=inst.read_noise if inst.read_noise is not None else _number(
            _first(header, inst.keys("read_noise"))),
        saturation=saturation if saturation is not None else _default_saturation(bitpix, bzero or 0),
        bitpix=bitpix, bzero=bzero or 0.0,
    )


def frame_info(path, config: Config | None = None) -> FrameInfo:
    """Read one file's header (fast path) and describe it; raises :class:`UnreadableFile`."""
    path = os.fspath(path)
    cards, hdu, shape, _ = _read_raw(path)
    inst = (config or Config()).instrument_for(cards)
    try:
        return describe(cards, path, inst, hdu=hdu, shape=shape)
    except (ValueError, TypeError, OverflowError) as e:
        raise UnreadableFile(f"unusable header: {e}") from None
