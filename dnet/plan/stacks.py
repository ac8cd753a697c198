"""Stack part of the diff: deploy a stack whose files changed, remove the ones the inventory no longer lists."""
from __future__ import annotations

from dnet.brownfield.stackcheck import differences
from dnet.facts import ObjectFact
from dnet.facts.model import KIND_LABEL
from dnet.inventory import stacks
from dnet.plan.model import Plan, StackDeploy, StackRemove
from dnet.plan.world import World

KIND = "stack"
STACK_LABEL = "dnet.stack"
DIGEST_LABEL = "dnet.stack.digest"
SERVICE_PREFIX = "dnet.stack.service."


def record_name(cluster: str, stack: str, digest: str) -> str:
    return f"dnet-stack-{cluster}-{stack}-{digest}"


def records(w: World, manager: str) -> dict[str, list[ObjectFact]]:
    """This cluster's stack records on a manager, by stack name."""
    out: dict[str, list[ObjectFact]] = {}
    for o in w.facts[manager].configs:
        if w.ours(o) and o.labels.get(KIND_LABEL) == KIND and o.labels.get(STACK_LABEL):
            out.setdefault(o.labels[STACK_LABEL], []).append(o)
    return out


def deployed(rec: list[ObjectFact]) -> dict[str, str]:
    """The services (and their section digests) the newest record says were deployed."""
    labels = rec[-1].labels if rec else {}
    return {k[len(SERVICE_PREFIX):]: v for k, v in labels.items() if k.startswith(SERVICE_PREFIX)}


def _runs_as_written(w: World, plan: Plan, leader: str, c: stacks.Compose) -> bool:
    """Whether every service of the compose file runs as it says (and no other service of the stack runs);
    else the differences go to plan.errors."""
    problems = differences(w.facts[leader], c, w.base, w.inv.cluster)
    if problems:
        plan.errors.append(f"stack '{c.stack}': adopting it needs {c.path.name} to say what runs: "
                           + "; ".join(problems) + " (dnet import writes such a file)")
    return not problems


def diff(w: World, plan: Plan) -> None:
    leader = w.leader()
    if not leader or leader not in w.facts or not w.facts[leader].is_manager:
        if w.inv.stacks:  # the swarm is made by this plan: its stacks follow on the next apply
            plan.warnings.append("stacks are deployed once the swarm runs: apply again after this one")
        return
    have = records(w, leader)
    for name, st in w.inv.stacks.items():
        try:
            c = stacks.read(name, st.file, w.base)
        except stacks.StackError as exc:
            plan.errors.append(str(exc))
            continue
        rec = have.get(name, [])
        if any(o.labels.get(DIGEST_LABEL) == c.digest for o in rec):
            continue
        adopt = st.adopt and not rec and _runs_as_written(w, plan, leader, c)
        if st.adopt and not rec and not adopt:
            continue  # why is in plan.errors
        plan.add(StackDeploy(host=leader, stack=name, path=str(c.path.resolve()), digest=c.digest,
                             services=c.services, current=deployed(rec),
                             record=record_name(w.inv.cluster, name, c.digest),
                             replaces=tuple(sorted(o.name for o in rec)), adopt=adopt))
    for name, rec in sorted(have.items()):
        if name not in w.inv.stacks:
            plan.add(StackRemove(host=leader, stack=name, records=tuple(sorted(o.name for o in rec))))
