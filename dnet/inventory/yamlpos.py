"""Parse YAML into plain data while remembering where every key and value sits."""
from __future__ import annotations

import re
from typing import Any

import yaml

from dnet.errors import Problem

Path = tuple[Any, ...]
Positions = dict[Path, tuple[int, int]]
MAX_DEPTH = 50
MAX_NODES = 100_000  # after alias expansion: a "billion laughs" file stops here instead of eating memory
MAX_TEXT = 4_000_000  # characters of scalar text after alias expansion (a long string aliased thousands of times)
# NUL, and the bidirectional controls that make text read differently from what it is (Trojan Source)
FORBIDDEN = re.compile("[\x00\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
LEADING_ZERO = re.compile(r"[-+]?0[0-9_]+")


class _Loader(yaml.SafeLoader):
    """A SafeLoader used only to construct scalars with YAML 1.1 tag rules."""


# libyaml's parser, when PyYAML has it, reads a file about ten times faster; a file it refuses is read again by the
# pure-Python one, so every error says what it always said
_Fast: type[Any] = type("_Fast", (yaml.CSafeLoader,), {}) if getattr(yaml, "__with_libyaml__", False) else _Loader


def _compose(text: str) -> yaml.Node | None:
    loaders: list[type[Any]] = [_Loader] if _Fast is _Loader else [_Fast, _Loader]
    for cls in loaders:
        loader = cls(text)
        try:
            node: yaml.Node | None = loader.get_single_node()
            return node
        except yaml.YAMLError:
            if cls is _Loader:
                raise
        finally:
            loader.dispose()
    return None


def load_with_positions(text: str, filename: str) -> tuple[Any, Positions, Positions]:
    """Return (data, key_positions, value_positions); raise-free problems via ValueError.

    Positions map a path like ("hosts", "node1", "port") to a 1-based (line, col).
    Duplicate keys and YAML syntax errors are reported as a list of Problems.
    """
    _check_depth(text, filename)
    loader = _Loader("")  # constructs scalars only
    problems: list[Problem] = []
    keys: Positions = {}
    values: Positions = {}
    try:
        node = _compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        msg = f"YAML syntax error: {exc.problem or exc.context}"
        raise _YamlProblems([Problem(line, col, msg, filename)]) from None
    except yaml.YAMLError as exc:
        raise _YamlProblems([Problem(1, 1, f"YAML error: {exc}", filename)]) from None
    if node is None:
        return None, keys, values

    def at(n: yaml.Node) -> tuple[int, int]:
        return n.start_mark.line + 1, n.start_mark.column + 1

    visited = [0]
    chars = [0]

    def walk(n: yaml.Node, path: Path, depth: int) -> Any:
        values[path] = at(n)
        visited[0] += 1
        if visited[0] > MAX_NODES:
            raise _YamlProblems([Problem(*at(n), f"more than {MAX_NODES} values once aliases are expanded; write "
                                         "the values out instead of nesting aliases", filename)])
        if depth > MAX_DEPTH:
            problems.append(Problem(*at(n), "nesting is too deep", filename))
            return None
        if isinstance(n, yaml.MappingNode):
            out: dict[Any, Any] = {}
            seen: dict[Any, tuple[int, int]] = {}
            for knode, vnode in n.value:
                if knode.tag == "tag:yaml.org,2002:merge":
                    problems.append(Problem(*at(knode), "merge keys (<<) are not supported; write the keys out",
                                            filename))
                    continue
                key = walk(knode, (*path, "<key>"), depth + 1)
                if not isinstance(key, (str, int, float, bool)) or key is None:
                    problems.append(Problem(*at(knode), "a mapping key must be a plain scalar", filename))
                    continue
                if key in seen:
                    first = seen[key][0]
                    problems.append(Problem(*at(knode), f"duplicate key '{key}' (first defined on line {first}); "
                                            "remove one", filename))
                    continue
                seen[key] = at(knode)
                keys[(*path, key)] = at(knode)
                out[key] = walk(vnode, (*path, key), depth + 1)
            return out
        if isinstance(n, yaml.SequenceNode):
            return [walk(item, (*path, i), depth + 1) for i, item in enumerate(n.value)]
        if isinstance(n, yaml.ScalarNode) and n.tag == "tag:yaml.org,2002:int" and not n.style and \
                LEADING_ZERO.fullmatch(n.value):
            plain = n.value.lstrip("+-").lstrip("0_") or "0"
            problems.append(Problem(*at(n), f"'{n.value}' has a leading zero, so YAML 1.1 would not read it as "
                                    f"{plain}; write {plain} (or quote it if it is text)", filename))
            return None
        chars[0] += len(n.value)
        if chars[0] > MAX_TEXT:
            raise _YamlProblems([Problem(*at(n), f"more than {MAX_TEXT:,} characters of text once aliases are "
                                         "expanded; write the values out instead of repeating aliases of long "
                                         "text", filename)])
        try:
            value = loader.construct_object(n, deep=True)
        except (yaml.YAMLError, ValueError, TypeError) as exc:
            problems.append(Problem(*at(n), f"cannot read this value: {exc}", filename))
            return None
        if isinstance(value, str) and (bad := FORBIDDEN.search(value)):
            problems.append(Problem(*at(n), f"this value holds the invisible control character U+"
                                    f"{ord(bad.group()):04X}; remove it", filename))
            return None
        return value

    data = walk(node, (), 0)
    if problems:
        raise _YamlProblems(problems)
    return data, keys, values


def _check_depth(text: str, filename: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH before composing (PyYAML's composer recurses and would overflow)."""
    depth = 0
    try:
        for ev in yaml.parse(text, Loader=_Fast):
            if isinstance(ev, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    line, col = (ev.start_mark.line + 1, ev.start_mark.column + 1) if ev.start_mark else (1, 1)
                    raise _YamlProblems([Problem(line, col, f"nesting is deeper than {MAX_DEPTH} levels", filename)])
            elif isinstance(ev, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        return  # reported with its position when the document is composed


class _YamlProblems(Exception):
    """Internal: problems found while reading YAML."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} problems")
