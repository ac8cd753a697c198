"""Load an inventory file into a validated model, or raise InventoryError with file:line:col."""
from __future__ import annotations

import copy
import os
import typing
from collections.abc import Callable
from pathlib import Path as FsPath
from typing import Any

from pydantic import BaseModel, ValidationError

from dnet.errors import InventoryError, Problem
from dnet.inventory import semantic
from dnet.inventory.schema import Inventory
from dnet.inventory.yamlpos import Positions, _YamlProblems, load_with_positions


class Loaded(typing.NamedTuple):
    """A valid inventory, where it came from, and any warnings."""

    model: Inventory
    path: str
    warnings: list[Problem]
    where: Callable[[tuple[Any, ...]], tuple[int, int]] = lambda path: (1, 1)


def load(path: str | FsPath) -> Loaded:
    """Read, parse and validate an inventory file."""
    name = str(path)
    try:
        text = FsPath(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InventoryError([Problem(1, 1, "no such inventory file; pass one with -i FILE", name)]) from None
    except IsADirectoryError:
        raise InventoryError([Problem(1, 1, "this is a directory, not an inventory file; pass one with -i FILE",
                                      name)]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError([Problem(1, 1, f"cannot read the inventory: {exc}", name)]) from None
    return loads(text, name)


def loads(text: str, filename: str = "<inventory>") -> Loaded:
    """Validate inventory YAML text; see load()."""
    try:
        data, keys, values = load_with_positions(text, filename)
    except _YamlProblems as exc:
        raise InventoryError(exc.problems) from None
    if not isinstance(data, dict):
        raise InventoryError([Problem(1, 1, "the inventory must be a mapping with at least 'version' and 'hosts'",
                                      filename)])

    def where(path: tuple[Any, ...]) -> tuple[int, int]:
        while path and path not in values:
            path = path[:-1]
        key, value = keys.get(path), values.get(path, (1, 1))
        return value if key is None or key[0] == value[0] else key

    try:
        model: Inventory | None = Inventory.model_validate(data)
        typed: list[Problem] = []
        removed: set[str] = set()
        blocked: set[tuple[Any, ...]] = set()
    except ValidationError as exc:
        typed = [validation_problem(e, keys, values, filename) for e in exc.errors()]
        model, removed, blocked = _salvage(data, values)
    found: list[Problem] = []
    if model is not None:  # reference checks too, so that one run reports every problem of the file
        def seen(path: tuple[Any, ...]) -> tuple[int, int]:
            if any(path[:len(b)] == b for b in blocked):
                return (-1, -1)
            return where(path)

        found = [p for p in semantic.check(model, seen, filename)
                 if p.line >= 0 and not any(f"'{name}'" in p.message for name in removed)]
    problems = typed + [p for p in found if p not in typed]
    if any(p.severity == "error" for p in problems):
        raise InventoryError(problems)
    assert model is not None
    return Loaded(model, filename, sorted(found), where)


NAMED = ("hosts", "groups", "networks", "services", "containers")


def _salvage(data: dict[str, Any], values: Positions) -> tuple[Inventory | None, set[str], set[tuple[Any, ...]]]:
    """Drop what failed validation until the rest validates, so reference checks can still run on it.

    Returns the model (None when a top-level key is broken), the names of entries dropped whole (problems that
    mention them are left out), and the sections whose list indexes shifted (their problems are left out too).
    """
    data = copy.deepcopy(data)
    removed: set[str] = set()
    blocked: set[tuple[Any, ...]] = set()
    for _ in range(20):
        try:
            return Inventory.model_validate(data), removed, blocked
        except ValidationError as exc:
            paths = {_clean(tuple(e["loc"]), values) for e in exc.errors()}
        if any(len(p) < 2 for p in paths):
            return None, removed, blocked
        for path in sorted(paths, key=lambda p: [str(x) for x in p], reverse=True):
            parent: Any = data
            for el in path[:-1]:
                parent = parent[el]
            if isinstance(parent, list):
                blocked.add(path[:1])
            if len(path) == 2 and path[0] in NAMED:
                removed.add(str(path[1]))
            try:
                del parent[path[-1]]
            except (KeyError, IndexError, TypeError):
                return None, removed, blocked
    return None, removed, blocked


def _clean(loc: tuple[Any, ...], values: Positions) -> tuple[Any, ...]:
    """Drop pydantic's union/validator tags from an error location."""
    path: tuple[Any, ...] = ()
    for el in loc:
        if (*path, el) in values:
            path += (el,)
    return path


def _dotted(path: tuple[Any, ...], steps_from_one: bool = False) -> str:
    """A key path as text: hosts.node1.port, networks[0]; a runbook's steps counted from 1 as the runner does."""
    out = ""
    if steps_from_one and len(path) > 1 and path[0] == "steps" and isinstance(path[1], int):
        out, path = f"step {path[1] + 1}", path[2:]
    for el in path:
        out += f"[{el}]" if isinstance(el, int) else (f".{el}" if out else str(el))
    return out or "top level"


def validation_problem(e: Any, keys: Positions, values: Positions, filename: str, model: Any = Inventory) -> Problem:
    loc = tuple(e["loc"])
    path = _clean(loc, values)
    kind = e["type"]
    msg = e["msg"].removeprefix("Value error, ")
    one = model is not Inventory  # a runbook: steps numbered from 1
    if kind == "extra_forbidden":
        key = loc[-1]
        parent = _clean(loc[:-1], values)
        known = _fields_at(model, parent)
        import difflib  # only a wrong key needs it: validate stays quick

        near = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        hint = f"; did you mean '{near[0]}'?" if near else (f"; known keys: {', '.join(known)}" if known else "")
        line, col = keys.get((*parent, key), values.get(parent, (1, 1)))
        return Problem(line, col, f"unknown key '{key}' in {_dotted(parent, one)}{hint}", filename)
    if kind == "missing":
        field = loc[-1]
        line, col = keys.get(path, values.get(path, (1, 1)))
        return Problem(line, col, f"missing required key '{field}' in {_dotted(path, one)}", filename)
    line, col = values.get(path, (1, 1))
    got = e.get("input")
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        msg = f"{got!r} is out of range: {msg[0].lower()}{msg[1:]}"
    elif kind.endswith("_type") or kind in ("literal_error", "string_pattern_mismatch", "too_short", "too_long"):
        shown = repr(got) if not isinstance(got, (dict, list)) else type(got).__name__
        msg = f"{msg} (got {shown})"
    return Problem(line, col, f"{_dotted(path, one)}: {msg}", filename)


def _fields_at(model: Any, path: tuple[Any, ...]) -> list[str]:
    """Names of the keys the schema allows at `path` (for 'did you mean')."""
    target = _model_at(model, path)
    if target is None:
        return []
    return [f.alias or n for n, f in target.model_fields.items()]


def _model_at(tp: Any, path: tuple[Any, ...]) -> Any:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        if not path:
            return tp
        for n, f in tp.model_fields.items():
            if (f.alias or n) == path[0]:
                return _model_at(f.annotation, path[1:])
        return None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return _model_at(args[0], path)
    if origin in (list, dict) and path:
        return _model_at(args[-1], path[1:])
    for arg in args:
        found = _model_at(arg, path)
        if found is not None:
            return found
    return None


def missing_keys(loaded: Loaded, severity: str = "error") -> list[Problem]:
    """identity_file entries that name no file on this machine, each at the line that sets it."""
    inv = loaded.model
    out: list[Problem] = []

    def check(path: tuple[Any, ...], value: str | None, users: list[str]) -> None:
        if value and users and not os.path.isfile(os.path.expanduser(value)):
            line, col = loaded.where(path)
            who = "every host without its own" if path[0] == "defaults" else f"host '{path[1]}'"
            out.append(Problem(line, col, f"identity_file '{value}' does not exist on this machine (used by {who}); "
                               "create the key or point identity_file at an existing one", loaded.path, severity))

    check(("defaults", "identity_file"), inv.defaults.identity_file,
          [n for n, h in inv.hosts.items() if not h.identity_file])
    for n, h in inv.hosts.items():
        check(("hosts", n, "identity_file"), h.identity_file, [n])
    return out
