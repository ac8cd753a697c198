"""Stacks: deploy a compose bundle with `docker stack deploy` on a manager, or remove a stack."""
from __future__ import annotations

from pathlib import Path

from dnet import CLUSTER_LABEL, MANAGED_LABEL
from dnet.errors import DnetError
from dnet.facts.model import KIND_LABEL
from dnet.inventory import stacks
from dnet.plan.model import StackDeploy, StackRemove
from dnet.plan.stacks import DIGEST_LABEL, KIND, SERVICE_PREFIX, STACK_LABEL
from dnet.poll import PollTimeout, poll
from dnet.tasks.base import Context, label_args, task
from dnet.transport.base import quote

# the bundle is unpacked in a private directory that goes whatever happens
UNPACK = ('d=$(mktemp -d) || exit 1; trap \'rm -rf "$d"\' EXIT; tar -x -C "$d" -f - && cd "$d" && '
          'docker stack deploy --prune -c {compose} {stack} >/dev/null')
FULL = "docker stack services {stack} --format '{{{{.Name}}}} {{{{.Replicas}}}}'"


@task(StackDeploy)
def deploy(ctx: Context, c: StackDeploy) -> str:
    got = stacks.read(c.stack, c.path, Path("/"))
    if got.digest != c.digest:
        raise stacks.StackError(f"stack '{c.stack}': {c.path} or a file it names changed after the plan was made; "
                                "run apply again")
    if not c.adopt:
        ctx.run(c.host, UNPACK.format(compose=stacks.COMPOSE, stack=quote(c.stack)), stdin=got.bundle(),
                timeout=300)
    labels = {MANAGED_LABEL: "true", CLUSTER_LABEL: ctx.inv.cluster, KIND_LABEL: KIND, STACK_LABEL: c.stack,
              DIGEST_LABEL: c.digest, **{f"{SERVICE_PREFIX}{s}": d for s, d in c.services.items()}}
    ctx.run(c.host, quote("docker", "config", "create", *label_args(labels), c.record, "-") + " >/dev/null",
            stdin=b"dnet stack record\n")
    for old in c.replaces:
        ctx.run(c.host, quote("docker", "config", "rm", old) + " >/dev/null 2>&1 || true")
    if c.adopt:
        return f"adopted: {len(c.services)} services recorded as deployed"
    short = _wait_full(ctx, c.host, c.stack)
    return f"deployed {len(c.services)} services" + (f"; not at full strength after 120s: {short}" if short else "")


def _wait_full(ctx: Context, host: str, stack: str) -> str:
    """Wait until every service of the stack runs its replicas; what is still short after the wait."""
    if ctx.dry_run:
        return ""
    seen = [""]

    def full() -> bool:
        rows = [ln.split() for ln in ctx.run(host, FULL.format(stack=quote(stack)), check=False).stdout.splitlines()]
        short = [f"{r[0]} {r[1]}" for r in rows if len(r) >= 2 and r[1].split("/")[0] != r[1].split("/")[-1]]
        seen[0] = ", ".join(short)
        return bool(rows) and not short

    try:
        poll(full, timeout=120, interval=1, what=f"stack {stack} to run every replica")
    except PollTimeout:
        return seen[0]
    return ""


@task(StackRemove)
def remove(ctx: Context, c: StackRemove) -> str:
    # `docker stack rm` removes the services, then the networks, which fail while their tasks still stop
    # ("network ... is in use by task"): those are removed here once the tasks are gone
    r = ctx.run(c.host, quote("docker", "stack", "rm", c.stack) + " >/dev/null", check=False)
    if not r.ok and "in use by task" not in r.stdout + r.stderr:
        r.check()
    if not ctx.dry_run:
        left = quote("docker", "network", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={c.stack}")

        def gone() -> bool:
            ids = ctx.run(c.host, left, check=False).stdout.split()
            if ids:
                ctx.run(c.host, quote("docker", "network", "rm", *ids) + " >/dev/null 2>&1", check=False)
            return not ids

        try:
            poll(gone, timeout=90, interval=1, what=f"stack {c.stack}'s networks to go")
        except PollTimeout as exc:
            raise DnetError(f"stack {c.stack}: its services are removed but its networks are still in use: {exc}; "
                            "run destroy again once its tasks have stopped") from None
    for rec in c.records:
        ctx.run(c.host, quote("docker", "config", "rm", rec) + " >/dev/null 2>&1 || true")
    return "removed"
