"""Safe YAML loading that remembers where every key and list item was written.

``yaml.safe_load`` forgets line numbers; here the document is composed into nodes with a
:class:`yaml.SafeLoader` (no arbitrary objects, ever), a map ``path -> line`` is taken from the node
start marks, and the plain Python data is then constructed from the same nodes. Duplicate mapping
keys, which PyYAML silently collapses, are reported.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import yaml

__all__ = ["Problems", "parse_yaml", "close_match_hint"]


@dataclass
class Problems:
    """Collects ``file:line: message (hint)`` strings, resolving a key path to its line."""

    filename: str
    lines: dict[tuple, int] = field(default_factory=dict)
    items: list[tuple[int, int, str]] = field(default_factory=list)

    def line(self, path: tuple) -> int:
        """The line of ``path``, or of its nearest recorded ancestor (1 for the document)."""
        path = tuple(path)
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)

    def add(self, path: tuple, message: str, hint: str | None = None, *, line: int | None = None) -> None:
        """Record a problem at ``path`` (or at an explicit ``line``)."""
        ln = self.line(path) if line is None else line
        text = f"{self.filename}:{ln}: {message}" + (f" ({hint})" if hint else "")
        self.items.append((ln, len(self.items), text))

    @property
    def messages(self) -> list[str]:
        """Every problem, in file order."""
        return [t for _, _, t in sorted(self.items)]

    def __bool__(self) -> bool:
        return bool(self.items)


def close_match_hint(word, candidates, *, n: int = 3) -> str | None:
    """``did you mean X?`` for the closest names (case-insensitive), or None."""
    if not isinstance(word, str):
        return None
    cands = [c for c in candidates if isinstance(c, str)]
    lower = {c.lower(): c for c in cands}
    found = [lower[m] for m in difflib.get_close_matches(word.lower(), list(lower), n=n, cutoff=0.6)]
    if not found:
        return None
    return "did you mean " + " or ".join(repr(f) for f in found) + "?"


_TAB_HINT = "indent with spaces, YAML does not allow tabs"

#: a recipe is a page of settings; anything bigger is refused before parsing (bounded time/memory)
MAX_RECIPE_BYTES = 256 * 1024
#: values a recipe may expand to through YAML aliases (``*name`` repeats the ``&name`` node)
MAX_EXPANDED_NODES = 20_000


def parse_yaml(text: str, problems: Problems):
    """The document's plain data (None when empty, invalid or too big); fills ``problems.lines``.

    Work is bounded by the document's size: texts over :data:`MAX_RECIPE_BYTES` are refused, and
    so are aliases that would expand the data past :data:`MAX_EXPANDED_NODES` values (a
    "billion laughs" document), counted without expanding them.
    """
    size = len(text.encode("utf-8", "replace"))
    if size > MAX_RECIPE_BYTES:
        problems.add((), f"the recipe is {size:,} bytes; a recipe may be at most "
                         f"{MAX_RECIPE_BYTES // 1024} KB", "is this the right file?", line=1)
        return None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        expanded = _expanded_size(node, {})
        if expanded > MAX_EXPANDED_NODES:
            problems.add((), f"YAML aliases (*name) expand this recipe to more than "
                             f"{MAX_EXPANDED_NODES:,} values",
                         "write the values out instead of repeating anchors", line=1)
            return None
        _record(node, (), problems)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        if e.context_mark and "<stream end>" in str(e.problem):  # unclosed bracket: point at its opening
            mark = e.context_mark
        msg = str(e.problem or e.context or "invalid YAML")
        if e.context and e.problem:
            started = e.context_mark.line + 1 if e.context_mark else None
            msg += f" ({e.context}" + (f" started on line {started})" if started and mark and
                                        started != mark.line + 1 else ")")
        hint = _TAB_HINT if "'\\t'" in msg else None
        last = max(1, len(text.rstrip().splitlines()))  # errors at the end of input: the last line
        problems.add((), f"YAML syntax error: {msg}", hint, line=min(mark.line + 1, last) if mark else 1)
    except yaml.YAMLError as e:
        problems.add((), f"YAML error: {e}")
    finally:
        loader.dispose()
    return None


def _expanded_size(node, memo: dict, depth: int = 0) -> int:
    """How many nodes the data would hold once every alias is expanded; each distinct node is
    visited once (memoised by identity), so the cost is the document's size, not the expansion."""
    known = memo.get(id(node))
    if known is not None:
        return known
    if depth > 500:  # deeper than any recipe: counted as too big rather than recursing on
        return MAX_EXPANDED_NODES + 1
    memo[id(node)] = MAX_EXPANDED_NODES + 1  # a node containing itself (recursive alias)
    total = 1
    if isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = node.value
    else:
        children = ()
    for child in children:
        total += _expanded_size(child, memo, depth + 1)
        if total > MAX_EXPANDED_NODES:
            break
    memo[id(node)] = total
    return total


def _record(node, path: tuple, problems: Problems) -> None:
    """Walk the node tree: line of each mapping key and sequence item; flag duplicate keys."""
    problems.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            ln = key_node.start_mark.line + 1
            if key is not None and key in seen:
                problems.add((), f"duplicate key {key!r} (first written on line {seen[key]})",
                             "only the last one would be used", line=ln)
            elif key is not None:
                seen[key] = ln
            sub = path + (_key(key_node),)
            problems.lines[sub] = ln
            _record(value_node, sub, problems)
            problems.lines[sub] = ln  # the key's line wins over its value's
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _record(item, path + (i,), problems)


def _key(key_node):
    """The constructed form of a scalar key (ints stay ints) so paths match the data."""
    if not isinstance(key_node, yaml.ScalarNode):
        return None
    try:
        return yaml.SafeLoader("").construct_object(key_node)
    except Exception:
        return key_node.value
