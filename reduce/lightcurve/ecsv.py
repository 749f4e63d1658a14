"""The light curve as text: plain CSV, and ECSV (the same CSV below a ``# `` commented YAML block).

astropy writes the CSV. Its ECSV writer would import ``astropy.io.misc.yaml``, which imports
``astropy.coordinates`` (about 0.6 s, most of the table writing of a whole ``reduce run``) only to
be able to represent sky coordinates, quantities and times. The light-curve table holds none: its
YAML block is written here by PyYAML (libyaml's emitter) with astropy's own style (its
``TableDumper``), the same bytes (pinned by tests/lightcurve/test_tables.py) in about 2 ms instead
of 15; any other table goes to astropy's writer.
"""
from __future__ import annotations

import io
import re

import numpy as np
import yaml

__all__ = ["csv_text", "ecsv_text"]

_KINDS = "biufU"  # bool, integers, floats, unicode: the column kinds written here
_PLAIN = (str, int, float, bool, type(None))
_NAME = re.compile(r"[A-Za-z0-9_.+-]+")  # column names that no CSV or ECSV writer quotes


def csv_text(t) -> str:
    """Plain CSV (one header line, full precision): what pandas, astropy, spreadsheets and
    AstroImageJ read with their defaults."""
    t = t.copy(copy_data=False)
    t.meta.clear()
    buf = io.StringIO()
    t.write(buf, format="ascii.csv", overwrite=True)
    return buf.getvalue().replace("\r\n", "\n")


def ecsv_text(t, csv: str | None = None) -> str:
    """ECSV with comma delimiters: a ``# `` YAML block (schema, units, descriptions, meta) above
    the same CSV table (astropy reads it by default as ``.ecsv``; pandas with ``comment='#'``).
    ``csv``: ``csv_text(t)`` when already made."""
    t = _plain_meta_table(t)
    header = _yaml_header(t)
    if header is None:
        buf = io.StringIO()
        t.write(buf, format="ascii.ecsv", delimiter=",", overwrite=True)
        return buf.getvalue().replace("\r\n", "\n")
    return "".join(f"# {line}\n" for line in header) + (csv_text(t) if csv is None else csv)


def _plain_meta_table(t):
    """A shallow copy of ``t`` with its meta made YAML-safe (see ``_plain_meta``)."""
    t = t.copy(copy_data=False)
    t.meta = _plain_meta(dict(t.meta))
    return t


def _plain_meta(value):
    """Meta values as YAML-safe Python scalars and lists (numpy values converted)."""
    if isinstance(value, dict):
        return {str(k): _plain_meta(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain_meta(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _yaml_header(t) -> list[str] | None:
    """astropy's ECSV header lines of ``t`` (``%ECSV`` version, ``---``, YAML), or None when ``t``
    holds what only astropy's writer represents (multidimensional, masked or object columns,
    column meta, names needing quotes, meta beyond scalars, lists and dicts)."""
    from astropy.io.ascii.ecsv import ECSV_VERSION

    columns = []
    for col in t.itercols():
        name = col.info.name
        if (col.ndim != 1 or col.dtype.kind not in _KINDS or getattr(col, "mask", None) is not None
                or col.info.meta or not _NAME.fullmatch(name)):
            return None
        columns.append(_column(col))
    if not _plain(t.meta):
        return None
    header = {"datatype": columns, "delimiter": ",", "schema": "astropy-2.0"}
    if t.meta:
        header["meta"] = _OrderedMeta(t.meta)
    text = yaml.dump(header, Dumper=_TableDumper, default_flow_style=None, width=130)
    return [f"%ECSV {ECSV_VERSION}", "---"] + text.splitlines()


def _column(col) -> "_ColumnAttributes":
    """A column's ECSV attributes in astropy's order: name, unit, datatype, format, description."""
    attrs = _ColumnAttributes(name=col.info.name)
    if col.info.unit is not None:
        attrs["unit"] = str(col.info.unit)
    attrs["datatype"] = "string" if col.dtype.kind == "U" else col.dtype.name
    for key in ("format", "description"):
        if getattr(col.info, key) is not None:
            attrs[key] = getattr(col.info, key)
    return attrs


def _plain(value) -> bool:
    """Whether ``value`` is made only of str/int/float/bool/None, lists and str-keyed dicts."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return type(value) in _PLAIN


class _ColumnAttributes(dict):
    """Column attributes, kept in insertion order by the dumper (astropy's ColumnDict order)."""


class _OrderedMeta(dict):
    """The table meta, dumped as an ordered ``!!omap`` of one-item mappings (as astropy does)."""


class _TableDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # libyaml's emitter when there
    """PyYAML's safe dumper with astropy's ECSV ``TableDumper`` rules: mapping keys sorted (except
    column attributes), each mapping flow-styled when all its keys and values are plain scalars."""

    def represent_mapping(self, tag, mapping, flow_style=None):
        items = list(mapping.items())
        if not isinstance(mapping, _ColumnAttributes):
            try:
                items = sorted(items)
            except TypeError:
                pass
        value = []
        node = yaml.MappingNode(tag, value, flow_style=flow_style)
        if self.alias_key is not None:
            self.represented_objects[self.alias_key] = node
        best_style = True
        for key, item in items:
            node_key, node_value = self.represent_data(key), self.represent_data(item)
            best_style &= _bare(node_key) and _bare(node_value)
            value.append((node_key, node_value))
        if flow_style is None:
            node.flow_style = best_style if self.default_flow_style is None else self.default_flow_style
        return node

    def represent_ordered_meta(self, data):
        value = []
        node = yaml.SequenceNode("tag:yaml.org,2002:omap", value, flow_style=None)
        if self.alias_key is not None:
            self.represented_objects[self.alias_key] = node
        best_style = True
        for key, item in data.items():
            entry = self.represent_data({key: item})
            best_style &= _bare(entry)
            value.append(entry)
        node.flow_style = best_style if self.default_flow_style is None else self.default_flow_style
        return node


def _bare(node) -> bool:
    """A scalar node with no quoting style (what lets PyYAML keep a collection on one line)."""
    return isinstance(node, yaml.ScalarNode) and not node.style


_TableDumper.add_representer(_ColumnAttributes, lambda d, data: d.represent_mapping(
    "tag:yaml.org,2002:map", data))
_TableDumper.add_representer(_OrderedMeta, _TableDumper.represent_ordered_meta)
