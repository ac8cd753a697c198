"""Check real --json output against the examples in docs/json.md (every key printed must be documented)."""
from __future__ import annotations

import json
import re
from typing import Any

from tests.conftest import ROOT

DOC = ROOT / "docs" / "json.md"


def examples() -> dict[str, Any]:
    """The documented examples, by the name in the `<!-- example: NAME -->` line before each JSON block."""
    text = DOC.read_text()
    found = re.findall(r"<!-- example: ([\w-]+) -->\s*```json\n(.*?)\n```", text, re.S)
    return {name: json.loads(body) for name, body in found}


def paths(data: Any, prefix: str = "") -> set[str]:
    """Every key path in a JSON value; list items share the path `[]`."""
    out: set[str] = set()
    if isinstance(data, dict):
        for k, v in data.items():
            p = f"{prefix}.{k}" if prefix else str(k)
            out |= {p} | paths(v, p)
    elif isinstance(data, list):
        for item in data:
            out |= paths(item, prefix + "[]")
    return out


def check(name: str, real: dict[str, Any], opaque: tuple[str, ...] = ()) -> None:
    """Fail unless real output has the documented top-level keys and prints nothing undocumented.

    `opaque` names fields whose keys are data (host or service names) rather than shape: their keys count as `*`.
    """
    doc = examples()[name]
    assert real["format_version"] == doc["format_version"] == 1
    assert set(real) == set(doc), f"{name}: top-level keys differ from docs/json.md"

    def norm(ps: set[str]) -> set[str]:
        out = set()
        for p in ps:
            for o in opaque:
                if p.startswith(o + "."):
                    rest = p[len(o) + 1:].split(".", 1)
                    p = f"{o}.*" + (f".{rest[1]}" if len(rest) > 1 else "")
            out.add(p)
        return out

    undocumented = norm(paths(real)) - norm(paths(doc))
    assert not undocumented, f"{name}: keys missing from docs/json.md: {sorted(undocumented)}"
