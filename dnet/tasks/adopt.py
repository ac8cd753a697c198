"""Ownership records: the object that says which things dnet did not make belong to the cluster."""
from __future__ import annotations

from dnet.brownfield import own
from dnet.plan.model import Adopt
from dnet.tasks.base import Context, label_args, task
from dnet.transport.base import quote


@task(Adopt)
def record(ctx: Context, c: Adopt) -> str:
    """Make the new record first, then remove the ones it replaces: a failure in between leaves both, and the
    objects stay owned."""
    owned = {i: (kind, name) for i, kind, name in c.owned}
    labels = label_args(own.labels(ctx.inv.cluster, owned))
    if owned and c.record not in c.replaces:
        if c.store == "config":
            ctx.run(c.host, quote("docker", "config", "create", *labels, c.record, "-") + " >/dev/null",
                    stdin=b"dnet ownership record\n")
        else:
            ctx.run(c.host, quote("docker", "volume", "create", *labels, c.record) + " >/dev/null")
    for old in c.replaces:
        if old != c.record:
            ctx.run(c.host, quote("docker", c.store, "rm", old) + " >/dev/null 2>&1 || true")
    return f"{len(owned)} objects owned" + (f": adopted {', '.join(c.new)}" if c.new else "")
