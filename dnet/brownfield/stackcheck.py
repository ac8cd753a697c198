"""Does a stack run as its compose file says? (adopting a stack, and `import --stack-file`)"""
from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from dnet.brownfield import actual, compose
from dnet.facts import HostFacts
from dnet.inventory import stacks
from dnet.inventory.schema import Service
from dnet.plan import desired as d
from dnet.plan.runspec import SpecError
from dnet.plan.workloads import changed


def differences(lf: HostFacts, c: stacks.Compose, base: Path, cluster: str) -> list[str]:
    """What differs between the compose file and the stack's services on a manager ([] when it runs as written)."""
    try:
        entries = compose.from_compose(c.stack, yaml.safe_load(c.files[stacks.COMPOSE]), c.files)
    except (compose.ComposeError, KeyError, TypeError, ValueError) as exc:
        return [f"cannot compare it with what runs: {exc}"]
    nets = {n.id: n.name for n in lf.networks}
    at = d.Where(base, cluster)
    problems = []
    for full, entry in entries.items():
        have = lf.service(full)
        if have is None:
            problems.append(f"service {full} does not run")
            continue
        try:
            want = d.service_spec(full, Service.model_validate(entry), None, at)
            got = actual.service(have, nets, want, at)
        except (ValidationError, actual.Unreadable, SpecError) as exc:
            problems.append(f"service {full}: {exc}")
            continue
        if got.hash != want.hash:
            problems.append(f"service {full} differs ({', '.join(changed(actual.shown(got), want))})")
    extra = sorted(s.name for s in lf.services if s.labels.get(compose.NAMESPACE) == c.stack and
                   s.name not in entries)
    return problems + [f"service {x} runs but is not in the file" for x in extra]
