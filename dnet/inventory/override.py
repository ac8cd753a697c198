"""`set:` (a runbook apply step's `with: {set: {services.web.replicas: 2}}`, `dnet plan/apply --set`): values that
override the inventory file for one run, validated by the same schema and checks as the file itself."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dnet.errors import DnetError, InventoryError
from dnet.inventory import semantic
from dnet.inventory.loader import Loaded
from dnet.inventory.schema import Inventory


def _walk(data: dict[str, Any], dotted: str) -> tuple[dict[str, Any], str]:
    """The mapping that holds a dotted path's last key, and that key. Keys may hold dots themselves (a service
    named web.v2): the longest key that exists wins at each level."""
    node: Any = data
    rest = dotted
    while True:
        if not isinstance(node, dict):
            raise DnetError(f"set {dotted}: {dotted[:len(dotted) - len(rest)].rstrip('.')} is no mapping")
        keys = sorted((k for k in node if rest == str(k) or rest.startswith(f"{k}.")), key=lambda k: -len(str(k)))
        if not keys or rest == str(keys[0]):
            if "." in rest and not keys:
                head = rest.split(".")[0]
                raise DnetError(f"set {dotted}: the inventory has no '{head}' there"
                                + (f" (it has: {', '.join(map(str, node))})" if node else ""))
            return node, str(keys[0]) if keys else rest
        node, rest = node[keys[0]], rest[len(str(keys[0])) + 1:]


def override(loaded: Loaded, sets: dict[str, Any]) -> tuple[Loaded, dict[str, str]]:
    """The inventory with `sets` applied, and what each changed ("services.web.replicas": "3 -> 1")."""
    if not sets:
        return loaded, {}
    data = yaml.safe_load(Path(loaded.path).read_text(encoding="utf-8"))
    data = copy.deepcopy(data)
    changed: dict[str, str] = {}
    for dotted, value in sets.items():
        holder, key = _walk(data, str(dotted))
        before = holder.get(key, "unset")
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)  # `-p replicas=2` arrives as text; the schema says what it must be
        holder[key] = value
        changed[str(dotted)] = f"{before} -> {value}"
    try:
        model = Inventory.model_validate(data)
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(x) for x in e["loc"])
        raise DnetError(f"set {', '.join(map(str, sets))}: the inventory would not be valid: {where}: {e['msg']}"
                        ) from None
    problems = [p for p in semantic.check(model, lambda path: (1, 1), loaded.path) if p.severity == "error"]
    if problems:
        raise InventoryError(problems)
    return Loaded(model, loaded.path, loaded.warnings, loaded.where), changed
