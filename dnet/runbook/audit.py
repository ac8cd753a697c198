"""The audit log: one JSON line per step and host, appended as the run goes (so an interrupted run leaves a trail)."""
from __future__ import annotations

import getpass
import json
import os
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dnet.transport.base import mask


def default_path() -> Path:
    """DNET_AUDIT_LOG, else audit.log under DNET_HOME (default ~/.local/share/dnet)."""
    if os.environ.get("DNET_AUDIT_LOG"):
        return Path(os.environ["DNET_AUDIT_LOG"])
    return Path(os.environ.get("DNET_HOME") or os.path.expanduser("~/.local/share/dnet")) / "audit.log"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Audit:
    """Appends records for one run; every text is masked with the run's secrets first."""

    def __init__(self, path: Path, runbook: str, file: str, params: dict[str, Any], dry_run: bool) -> None:
        self.path, self.runbook, self.file, self.dry_run = path, runbook, file, dry_run
        self.run_id = uuid.uuid4().hex[:12]
        self.params = params
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, secrets: tuple[str, ...], **record: Any) -> None:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        line = {"run": self.run_id, "runbook": self.runbook, "file": self.file, "user": user,
                "dry_run": self.dry_run, "params": self.params, **record}
        text = mask(json.dumps(line, default=str), secrets)
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                fh.write(text + "\n")
