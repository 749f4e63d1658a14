"""FITS header cards (80-character text) parsed into keyword values, lazily: the fast path of
:mod:`reduce.io.fits` (a scan asks for a few dozen keywords of a header, most of them absent)."""
from __future__ import annotations

from typing import Any

__all__ = ["RawHeader", "LazyHeader", "parse_cards", "header_text", "CARD"]


CARD = 80


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


def parse_cards(text: str) -> RawHeader:
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


def header_text(block: bytes) -> str:
    """ASCII text of header bytes; a stray non-ASCII byte (an accented letter in a comment, which
    astropy tolerates too) becomes '?', keeping every card 80 characters long."""
    try:
        return block.decode("ascii")
    except UnicodeDecodeError:
        return block.translate(_ASCII_ONLY).decode("ascii")


_ASCII_ONLY = bytes(range(128)) + b"?" * 128


class LazyHeader:
    """The header of a plain FITS frame: ``get``, ``[keyword]`` and ``in`` are answered from its raw
    cards, as the index reads them; anything else (cards, comments, iteration, ``tostring``, a WCS)
    goes to the :class:`astropy.io.fits.Header` built from its text on first need
    (:meth:`to_astropy`). Building that costs ~0.5 ms of a dense frame's ~22 ms (70 cards), and the
    frames' chain only looks keywords up. Commentary, HIERARCH and lower-case lookups go to astropy."""

    __slots__ = ("_text", "_cards", "_header")

    def __init__(self, text: str, cards: RawHeader | None = None):
        self._text, self._cards, self._header = text, cards, None

    def to_astropy(self):
        """The :class:`astropy.io.fits.Header` (built once)."""
        if self._header is None:
            from astropy.io import fits

            self._header = fits.Header.fromstring(self._text)
        return self._header

    def _raw(self, key) -> bool:
        """True when ``key`` is a plain keyword the raw cards answer like astropy."""
        return (isinstance(key, str) and 0 < len(key) <= 8 and key.isupper()
                and key not in ("COMMENT", "HISTORY"))

    def _lookup(self) -> RawHeader:
        if self._cards is None:
            self._cards = parse_cards(self._text)
        return self._cards

    def get(self, key, default=None):
        if self._raw(key):
            return self._lookup().get(key, default)
        return self.to_astropy().get(key, default)

    def __getitem__(self, key):
        if self._raw(key):
            return self._lookup()[key]
        return self.to_astropy()[key]

    def __contains__(self, key) -> bool:
        if self._raw(key):
            return key in self._lookup()
        return key in self.to_astropy()

    def __iter__(self):
        return iter(self.to_astropy())

    def __len__(self) -> int:
        return len(self.to_astropy())

    def __repr__(self) -> str:
        return repr(self.to_astropy())

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.to_astropy(), name)

    def __reduce__(self):  # frames come back from workers: only the text travels
        return (LazyHeader, (self._text,))
