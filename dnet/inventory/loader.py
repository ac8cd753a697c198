"""Load an inventory file into a validated model, or raise InventoryError with file:line:col."""
from __future__ import annotations

import difflib
import typing
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


def load(path: str | FsPath) -> Loaded:
    """Read, parse and validate an inventory file."""
    name = str(path)
    try:
        text = FsPath(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InventoryError([Problem(1, 1, "no such inventory file; pass one with -i FILE", name)]) from None
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
        model = Inventory.model_validate(data)
    except ValidationError as exc:
        raise InventoryError([_problem(e, keys, values, filename) for e in exc.errors()]) from None
    found = semantic.check(model, where, filename)
    errors = [p for p in found if p.severity == "error"]
    if errors:
        raise InventoryError(found)
    return Loaded(model, filename, sorted(found))


def _clean(loc: tuple[Any, ...], values: Positions) -> tuple[Any, ...]:
    """Drop pydantic's union/validator tags from an error location."""
    path: tuple[Any, ...] = ()
    for el in loc:
        if (*path, el) in values:
            path += (el,)
    return path


def _dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for el in path:
        out += f"[{el}]" if isinstance(el, int) else (f".{el}" if out else str(el))
    return out or "top level"


def _problem(e: Any, keys: Positions, values: Positions, filename: str) -> Problem:
    loc = tuple(e["loc"])
    path = _clean(loc, values)
    kind = e["type"]
    msg = e["msg"].removeprefix("Value error, ")
    if kind == "extra_forbidden":
        key = loc[-1]
        parent = _clean(loc[:-1], values)
        known = _fields_at(Inventory, parent)
        near = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        hint = f"; did you mean '{near[0]}'?" if near else (f"; known keys: {', '.join(known)}" if known else "")
        line, col = keys.get((*parent, key), values.get(parent, (1, 1)))
        return Problem(line, col, f"unknown key '{key}' in {_dotted(parent)}{hint}", filename)
    if kind == "missing":
        field = loc[-1]
        line, col = keys.get(path, values.get(path, (1, 1)))
        return Problem(line, col, f"missing required key '{field}' in {_dotted(path)}", filename)
    line, col = values.get(path, (1, 1))
    got = e.get("input")
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        msg = f"{got!r} is out of range: {msg[0].lower()}{msg[1:]}"
    elif kind.endswith("_type") or kind in ("literal_error", "string_pattern_mismatch", "too_short", "too_long"):
        shown = repr(got) if not isinstance(got, (dict, list)) else type(got).__name__
        msg = f"{msg} (got {shown})"
    return Problem(line, col, f"{_dotted(path)}: {msg}", filename)


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
