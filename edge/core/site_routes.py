"""Which InfluxDB node holds a site: the site -> node map, pure.

Each node names the sites it owns, by exact name or by glob (``*``, ``?``,
``[abc]``, ``[!abc]``, as ``fnmatch``). A site is looked up in this order:

1. an exact name: the node that lists it;
2. a glob: the node whose glob matches it;
3. nothing matched: the default node. A site is never dropped.

An exact name beats a glob, so ``"north-17"`` under one node carves one site out
of another node's ``"north-*"`` (how a single site is moved). What the map refuses,
because the answer would depend on the order of the file (``problems``):

- the same exact name under two nodes;
- two globs of different nodes that can both match one name (decided exactly,
  by walking both patterns together, not by trying names);
- a rule naming a node that is not defined.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

GLOB_CHARS = frozenset("*?[")
DEFAULT_NODE = "default"
_CACHE_MAX = 100_000


def is_glob(pattern: str) -> bool:
    return any(c in GLOB_CHARS for c in pattern)


@dataclass
class SiteRoutes:
    """``rules``: node -> the site names and globs it owns. ``default``: the node
    of every other site."""

    rules: Mapping[str, Iterable[str]] = field(default_factory=dict)
    default: str = DEFAULT_NODE

    def __post_init__(self) -> None:
        self.exact: dict[str, str] = {}
        self.globs: list[tuple[str, re.Pattern, str]] = []  # (pattern, compiled, node)
        for node, patterns in self.rules.items():
            for pattern in patterns:
                if is_glob(pattern):
                    self.globs.append((pattern, re.compile(fnmatch.translate(pattern)), node))
                else:
                    self.exact.setdefault(pattern, node)
        self._cache: dict[str, str] = {}

    @property
    def nodes(self) -> list[str]:
        """Every node, the default first."""
        return [self.default, *(n for n in self.rules if n != self.default)]

    def node_for(self, site: str | None) -> str:
        """The node that holds ``site`` (the default when nothing names it, or when
        a point carries no site)."""
        if site is None:
            return self.default
        node = self._cache.get(site)
        if node is None:
            node = self.exact.get(site)
            if node is None:
                node = next((n for _p, rx, n in self.globs if rx.match(site)), self.default)
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[site] = node
        return node

    def split(self, sites: Iterable[str]) -> dict[str, list[str]]:
        """Node -> the given sites it holds, each node listed once, in ``nodes`` order."""
        out: dict[str, list[str]] = {n: [] for n in self.nodes}
        for site in sites:
            out[self.node_for(site)].append(site)
        return {n: s for n, s in out.items() if s}

    def problems(self, known_nodes: Iterable[str]) -> list[str]:
        """Why this map is ambiguous or names an unknown node; [] when it is sound."""
        known = set(known_nodes) | {self.default}
        found = [f"sites are routed to node {node!r}, which is not defined (nodes: {', '.join(sorted(known))})"
                 for node in self.rules if node not in known]
        owners: dict[str, list[str]] = {}
        for node, patterns in self.rules.items():
            for pattern in patterns:
                if not is_glob(pattern):
                    owners.setdefault(pattern, []).append(node)
        found += [f"site {site!r} is listed under more than one node: {', '.join(sorted(set(nodes)))}"
                  for site, nodes in owners.items() if len(set(nodes)) > 1]
        for i, (p1, _rx1, n1) in enumerate(self.globs):
            for p2, _rx2, n2 in self.globs[i + 1:]:
                if n1 != n2 and globs_overlap(p1, p2):
                    found.append(f"globs {p1!r} (node {n1!r}) and {p2!r} (node {n2!r}) can match the same "
                                 f"site; list such a site by its exact name, or make the globs disjoint")
        return found


# ------------------------------------------------------------------ glob intersection

def _items(pattern: str) -> list[tuple[str, object]]:
    """A glob as items: ("*", None), ("?", None), ("set", (negated, chars)) or ("lit", char)."""
    items: list[tuple[str, object]] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if not items or items[-1][0] != "*":
                items.append(("*", None))
        elif c == "?":
            items.append(("?", None))
        elif c == "[" and (end := _set_end(pattern, i)) > 0:
            body = pattern[i + 1:end]
            negated = body[:1] == "!"
            items.append(("set", (negated, _expand(body[1:] if negated else body))))
            i = end
        else:
            items.append(("lit", c))
        i += 1
    return items


def _set_end(pattern: str, start: int) -> int:
    """Index of the ``]`` closing the set at ``start`` (as fnmatch reads it), -1 if none."""
    j = start + 1
    if j < len(pattern) and pattern[j] == "!":
        j += 1
    if j < len(pattern) and pattern[j] == "]":
        j += 1
    end = pattern.find("]", j)
    return end


def _expand(body: str) -> frozenset[str]:
    chars: set[str] = set()
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            lo, hi = ord(body[i]), ord(body[i + 2])
            chars.update(chr(c) for c in range(lo, hi + 1))
            i += 3
        else:
            chars.add(body[i])
            i += 1
    return frozenset(chars)


def _one_char_overlap(a: tuple[str, object], b: tuple[str, object]) -> bool:
    """Can one character match both single-character items?"""
    if a[0] == "?" or b[0] == "?":
        return True
    sets = []
    for kind, value in (a, b):
        sets.append((False, frozenset(value)) if kind == "lit" else value)
    (neg1, s1), (neg2, s2) = sets
    if not neg1 and not neg2:
        return bool(s1 & s2)
    if neg1 and neg2:
        return True  # the alphabet is larger than any two sets
    positive, negative = (s1, s2) if not neg1 else (s2, s1)
    return bool(positive - negative)


def globs_overlap(p1: str, p2: str) -> bool:
    """Whether some name matches both globs: a walk over pairs of positions."""
    a, b = _items(p1), _items(p2)
    seen: set[tuple[int, int]] = set()
    todo = [(0, 0)]
    while todo:
        i, j = todo.pop()
        if (i, j) in seen:
            continue
        seen.add((i, j))
        if i == len(a) and j == len(b):
            return True
        star_a = i < len(a) and a[i][0] == "*"
        star_b = j < len(b) and b[j][0] == "*"
        if star_a:
            todo.append((i + 1, j))  # the star matches nothing more
        if star_b:
            todo.append((i, j + 1))
        if i < len(a) and j < len(b):
            if star_a and star_b:
                todo.append((i, j + 1))
            elif star_a:
                todo.append((i, j + 1))  # the star eats b's character
            elif star_b:
                todo.append((i + 1, j))
            elif _one_char_overlap(a[i], b[j]):
                todo.append((i + 1, j + 1))
    return False
