"""Changes and plans: data only, nothing runs here."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Apply order: lower phases first; within a phase hosts run in parallel.
PHASES = ["engine", "swarm", "node", "prune", "network", "image", "workload", "forward"]


@dataclass
class Change:
    """One thing apply will do on one host."""

    host: str
    phase: str
    kind: str  # engine|daemon|swarm|node|network|image|container|service|forward
    name: str
    action: str  # install|start|update|init|join|promote|demote|label|create|recreate|remove|stream|pull|rewrite
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict, repr=False)

    def public(self) -> dict[str, Any]:
        """The JSON form (no payload: payloads may hold internal details)."""
        return {"host": self.host, "kind": self.kind, "name": self.name, "action": self.action, "detail": self.detail}


@dataclass
class Plan:
    """Ordered changes plus problems that block an apply and warnings that do not."""

    changes: list[Change] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, *changes: Change) -> None:
        self.changes.extend(changes)

    def ordered(self) -> list[Change]:
        return sorted(self.changes, key=lambda c: PHASES.index(c.phase))

    def public(self) -> dict[str, Any]:
        return {"changes": [c.public() for c in self.ordered()], "errors": self.errors, "warnings": self.warnings,
                "summary": {"changes": len(self.changes), "errors": len(self.errors)}}
