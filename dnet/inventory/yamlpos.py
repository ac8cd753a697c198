"""Parse YAML into plain data while remembering where every key and value sits."""
from __future__ import annotations

from typing import Any

import yaml

from dnet.errors import Problem

Path = tuple[Any, ...]
Positions = dict[Path, tuple[int, int]]


class _Loader(yaml.SafeLoader):
    """A SafeLoader used only to construct scalars with YAML 1.1 tag rules."""


def load_with_positions(text: str, filename: str) -> tuple[Any, Positions, Positions]:
    """Return (data, key_positions, value_positions); raise-free problems via ValueError.

    Positions map a path like ("hosts", "node1", "port") to a 1-based (line, col).
    Duplicate keys and YAML syntax errors are reported as a list of Problems.
    """
    loader = _Loader(text)
    problems: list[Problem] = []
    keys: Positions = {}
    values: Positions = {}
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        msg = f"YAML syntax error: {exc.problem or exc.context}"
        raise _YamlProblems([Problem(line, col, msg, filename)]) from None
    except yaml.YAMLError as exc:
        raise _YamlProblems([Problem(1, 1, f"YAML error: {exc}", filename)]) from None
    finally:
        loader.dispose()
    if node is None:
        return None, keys, values

    def at(n: yaml.Node) -> tuple[int, int]:
        return n.start_mark.line + 1, n.start_mark.column + 1

    def walk(n: yaml.Node, path: Path, depth: int) -> Any:
        values[path] = at(n)
        if depth > 50:
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
        try:
            return loader.construct_object(n, deep=True)
        except (yaml.YAMLError, ValueError, TypeError) as exc:
            problems.append(Problem(*at(n), f"cannot read this value: {exc}", filename))
            return None

    data = walk(node, (), 0)
    if problems:
        raise _YamlProblems(problems)
    return data, keys, values


class _YamlProblems(Exception):
    """Internal: problems found while reading YAML."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} problems")
