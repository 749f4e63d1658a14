"""Raw FITS header reading: the first image HDU's header, straight from its 2880-byte blocks.

Plain and gzipped FITS are parsed without astropy (about ten times faster, which the scan of a
large night needs); Rice-compressed ``.fz`` images go through astropy. Split from
:mod:`reduce.index.headers`, which turns these headers into a frame description.
"""
from __future__ import annotations

import gzip
import os
from typing import Any

__all__ = ["UnreadableFile", "NotAnImage", "OwnProduct", "RawHeader", "read_header", "is_fits_name"]

BLOCK = 2880
CARD = 80
_FITS_EXTS = (".fits", ".fit", ".fts")


class UnreadableFile(Exception):
    """The file cannot be used as a FITS image; the message says why."""


class NotAnImage(UnreadableFile):
    """A valid FITS file that holds tables or cubes but no 2-D image: not a frame."""


class OwnProduct(NotAnImage):
    """A light-curve product written by reduce (primary ORIGIN = 'reduce' and REDUCE_SCHEMA)."""


def is_fits_name(name: str) -> bool:
    """True for ``.fits .fit .fts`` (any case), optionally gzipped (``.gz``), and any ``.fz``."""
    low = name.lower()
    if low.endswith(".fz"):
        return True
    if low.endswith(".gz"):
        low = low[:-3]
    return low.endswith(_FITS_EXTS)


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
        text = header_text(block)
        chunks.append(text)
        for i in range(0, BLOCK, CARD):
            if text[i:i + 8] == "END     ":
                return "".join(chunks)
        if len(chunks) > 2000:
            raise UnreadableFile("header has no END card")


def header_text(block: bytes) -> str:
    """ASCII text of header bytes; a stray non-ASCII byte (an accented letter in a comment, which
    astropy tolerates too) becomes '?', keeping every card 80 characters long."""
    try:
        return block.decode("ascii")
    except UnicodeDecodeError:
        return block.translate(_ASCII_ONLY).decode("ascii")


_ASCII_ONLY = bytes(range(128)) + b"?" * 128


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
    offset, index, tables = 0, 0, []
    while True:
        text = _read_header_block(f)
        if text is None:
            break
        cards = _parse_cards(text)
        if index == 0 and "REDUCE_SCHEMA" in cards and str(cards.get("ORIGIN") or "").strip() == "reduce":
            raise OwnProduct("a light-curve product of reduce")
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
        if xt in ("BINTABLE", "TABLE"):
            tables.append("table")
        elif int(cards.get("NAXIS") or 0) > 2:
            naxis = int(cards.get("NAXIS") or 0)
            dims = "x".join(str(int(cards.get(f"NAXIS{k}") or 0)) for k in range(1, naxis + 1))
            tables.append(f"{naxis}-D cube ({dims})")
        if padded:
            f.seek(padded, os.SEEK_CUR)
        offset += padded
        index += 1
        if size is not None and offset >= size:
            break
    if tables:
        kinds = sorted(set(tables))
        raise NotAnImage("no 2-D image: " + (f"{len(tables)} FITS table(s) only" if kinds == ["table"]
                                             else ", ".join(kinds)))
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
