"""Property: any mutation of a valid inventory yields a model or a clean InventoryError."""
from __future__ import annotations

import re
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnet.errors import InventoryError
from dnet.inventory import loads
from tests.conftest import EXAMPLE

BASE = yaml.safe_load(EXAMPLE.read_text())
LINE = re.compile(r"^<fuzz>:\d+:\d+: .+")

leaf = st.one_of(st.none(), st.booleans(), st.integers(-70000, 70000), st.text(max_size=12),
                 st.sampled_from(["10.0.0.0/8", "300.1.1.1", "node1", "appnet", "8080:80/udp", "tcp", "host"]))
value = st.recursive(leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=8), inner,
                                                                   max_size=3)), max_leaves=6)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += paths(v, (*prefix, i))
    return out


def mutate(data: Any, path: tuple[Any, ...], op: str, new: Any, key: str) -> Any:
    if not path:
        return new if op == "replace" else data
    parent = data
    for el in path[:-1]:
        parent = parent[el]
    last = path[-1]
    if op == "delete":
        del parent[last]
    elif op == "replace":
        parent[last] = new
    elif op == "add" and isinstance(parent[last], dict):
        parent[last][key] = new
    return data


def check(text: str) -> None:
    try:
        loads(text, "<fuzz>")
    except InventoryError as exc:
        assert exc.problems
        for p in exc.problems:
            assert LINE.match(str(p)), str(p)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_structural_mutations_never_crash(data: st.DataObject) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths(doc)))
        op = data.draw(st.sampled_from(["delete", "replace", "add"]))
        doc = mutate(doc, path, op, data.draw(value), data.draw(st.text(max_size=8)))
    check(yaml.safe_dump(doc, sort_keys=False))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_text_mutations_never_crash(data: st.DataObject) -> None:
    text = EXAMPLE.read_text()
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(text)))
        if data.draw(st.booleans()):
            text = text[:pos] + data.draw(st.text(alphabet=":-[]{},#&*!|>'\"\n 0123456789abc", max_size=4)) + text[pos:]
        else:
            text = text[:pos] + text[pos + data.draw(st.integers(1, 8)):]
    check(text)
