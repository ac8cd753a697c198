"""Compare a verify run with an earlier `verify --json`: only new failures fail ("nothing else broke")."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dnet.errors import DnetError
from dnet.verify.model import Check

Key = tuple[str, str, str]  # from, to, check (what the table shows): stable across runs, unlike a check's id


def key(c: dict[str, Any]) -> Key:
    return str(c.get("from", "")), str(c.get("to", "")), str(c.get("check", ""))


def load(path: str) -> dict[Key, bool]:
    """An earlier `dnet verify --json`: each check's key and whether it held."""
    try:
        data = json.loads(Path(path).read_text())
        checks = data["checks"]
        return {key(c): bool(c["ok"]) for c in checks}
    except OSError as exc:
        raise DnetError(f"--baseline {path}: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise DnetError(f"--baseline {path}: not the output of dnet verify --json ({exc.__class__.__name__}: "
                        f"{exc}); write one with dnet verify -i INVENTORY --json > {path}") from None


def compare(checks: list[Check], before: dict[Key, bool]) -> dict[str, int]:
    """Tag each failing check `baseline: new` or `baseline: known` (it failed before too); count them, and the
    checks that failed before and hold now."""
    counts = {"new_failures": 0, "known_failures": 0, "fixed": 0, "not_in_baseline": 0}
    for c in checks:
        k = key(c.public())
        was = before.get(k)
        if was is None:
            counts["not_in_baseline"] += 1
        if c.ok:
            counts["fixed"] += was is False
            continue
        known = was is False
        c.tags["baseline"] = "known" if known else "new"
        counts["known_failures" if known else "new_failures"] += 1
    return counts
