"""Saved plans (Terraform's `plan -out` / `apply PLANFILE`): `dnet plan -o PLAN.json` writes the plan with a
fingerprint of what it was made from (the inventory file, the options, and each host's state, section by
section); `dnet apply --plan PLAN.json` plans again and carries the plan out only when the inventory and the hosts
are as they were and the plan comes out the same: exactly the changes that were reviewed, or nothing."""
from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dnet.errors import DnetError
from dnet.facts import HostFacts
from dnet.plan.model import Plan

FORMAT = "dnet-plan/1"


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def sections(f: HostFacts) -> dict[str, Any]:
    """What a plan reads from one host, by section; nothing that moves by itself (uptimes, task states)."""
    def labelled(items: list[Any], *fields: str) -> list[Any]:
        return sorted(([getattr(x, k) for k in fields] + [x.labels] for x in items), key=str)

    return {
        "engine": [f.engine, f.daemon, f.packages, f.held],
        "swarm": [f.swarm.state, f.swarm.node_id, f.swarm.cluster_id, f.swarm.control_available,
                  labelled(f.nodes, "id", "hostname", "role", "availability")],
        "networks": labelled(f.networks, "id", "name", "driver", "scope", "subnets", "internal", "attachable", "mtu"),
        "containers": labelled(f.containers, "id", "name", "image", "running"),
        "services": sorted(([s.id, s.name, s.image, s.replicas, s.labels, s.raw.get("Spec")] for s in f.services),
                           key=str),
        "images": f.images,
        "files": [labelled(f.secrets, "id", "name"), labelled(f.configs, "id", "name")],
        "volumes": labelled(f.volumes, "id", "name"),
        "forwards": sorted(r for r in f.nat_rules if "dnet" in r),
    }


def fingerprint(facts: dict[str, HostFacts]) -> dict[str, dict[str, str]]:
    return {h: {k: _digest(v) for k, v in sections(f).items()} for h, f in sorted(facts.items())}


def _file_digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _changes(public: dict[str, Any]) -> list[str]:
    return [f"{c['host']}: {c['kind']} {c['name']} {c['action']} {c['detail']}".rstrip()
            for c in public.get("changes", [])]


def save(path: str, inventory: str, options: dict[str, Any], facts: dict[str, HostFacts], plan: Plan) -> None:
    """Write the plan file (mode 0600: it names the hosts and what they run; it holds no secret)."""
    data = {"format": FORMAT, "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "inventory": str(Path(inventory).resolve()), "inventory_sha256": _file_digest(inventory),
            "options": options, "facts": fingerprint(facts), "plan": plan.public()}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, default=str)
        fh.write("\n")


def read(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DnetError(f"--plan {path}: cannot read a saved plan ({exc}); write one with dnet plan -o FILE") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DnetError(f"--plan {path}: not a dnet plan file (format {FORMAT}); write one with dnet plan -o FILE")
    return data


def drift(saved: dict[str, Any], inventory: str, facts: dict[str, HostFacts], plan: Plan) -> list[str]:
    """Why the saved plan no longer holds (empty: it does, and `plan` is the same plan)."""
    out: list[str] = []
    if str(Path(inventory).resolve()) != saved.get("inventory"):
        out.append(f"the plan was made from {saved.get('inventory')}, not {Path(inventory).resolve()}")
    elif _file_digest(inventory) != saved.get("inventory_sha256"):
        out.append(f"the inventory {inventory} changed since the plan was saved")
    now, then = fingerprint(facts), saved.get("facts", {})
    for h in sorted(set(now) | set(then)):
        if h not in now:
            out.append(f"{h}: could not be read now (it was when the plan was saved)")
        elif h not in then:
            out.append(f"{h}: read now, but not when the plan was saved")
        else:
            moved = [k for k in now[h] if now[h][k] != then[h].get(k)]
            if moved:
                out.append(f"{h}: its {', '.join(moved)} changed since the plan was saved")
    old, new = _changes(saved.get("plan", {})), _changes(plan.public())
    out += [f"no longer planned: {c}" for c in old if c not in new]
    out += [f"newly planned: {c}" for c in new if c not in old]
    return out


def options_of(saved: dict[str, Any]) -> dict[str, Any]:
    opts = saved.get("options", {})
    return opts if isinstance(opts, dict) else {}


__all__ = ["drift", "fingerprint", "options_of", "read", "save"]
