"""An autolocked swarm's unlock key: kept where the operator said when the swarm is made, found again when a
restarted manager needs it. Only in memory otherwise (Context.unlock_key)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from dnet.tasks.base import Context


def keep_unlock_key(ctx: Context) -> str:
    """Put the unlock key where the operator said (mode 0600), else show it once on stderr; say which."""
    path = ctx.inv.swarm.unlock_key_file if ctx.inv.swarm else None
    if ctx.dry_run:
        return "unlock key kept"
    if path:
        target = os.path.expanduser(path)
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(ctx.unlock_key + "\n")
        os.chmod(target, 0o600)
        return f"unlock key written to {path} (mode 0600)"
    sys.stderr.write(f"\nThe swarm is autolocked. Its unlock key, shown this once (dnet keeps it nowhere; set "
                     f"swarm.unlock_key_file to have it written to a file):\n{ctx.unlock_key}\n\n")
    return "unlock key shown once on stderr"


def unlock_key(ctx: Context) -> str:
    """The key that unlocks a restarted manager: this run's, the inventory's file, or DNET_UNLOCK_KEY."""
    if ctx.unlock_key:
        return ctx.unlock_key
    path = ctx.inv.swarm.unlock_key_file if ctx.inv.swarm else None
    if path and os.path.isfile(os.path.expanduser(path)):
        ctx.unlock_key = Path(os.path.expanduser(path)).read_text(encoding="utf-8").strip()
    ctx.unlock_key = ctx.unlock_key or os.environ.get("DNET_UNLOCK_KEY", "").strip()
    return ctx.unlock_key
