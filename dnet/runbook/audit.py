"""The audit log: one JSON line per step and host, appended as the run goes (so an interrupted run leaves a trail)."""
from __future__ import annotations

import errno
import getpass
import hashlib
import json
import os
import stat
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dnet.errors import DnetError
from dnet.transport.base import mask_data


def default_path() -> Path:
    """DNET_AUDIT_LOG, else audit.log under DNET_HOME (default ~/.local/share/dnet)."""
    if os.environ.get("DNET_AUDIT_LOG"):
        return Path(os.environ["DNET_AUDIT_LOG"])
    return Path(os.environ.get("DNET_HOME") or os.path.expanduser("~/.local/share/dnet")) / "audit.log"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def open_log(path: Path) -> int:
    """Open the audit log for appending, refusing what could let someone else read, forge or redirect it: a
    symbolic link (O_NOFOLLOW), a file owned by another user, one that group or others may write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DnetError(f"audit log {path} is a symbolic link; dnet does not follow links there: point "
                            "--audit-log (or DNET_AUDIT_LOG) at the real file") from None
        raise DnetError(f"cannot open the audit log {path}: {exc.strerror}") from None
    problem = _unsafe(os.fstat(fd))
    if problem:
        os.close(fd)
        fix = f"chmod 600 {path}" if "mode" in problem else "use a file of your own (--audit-log)"
        raise DnetError(f"audit log {path} {problem}; refusing to append to it: {fix}")
    return fd


def _unsafe(st: os.stat_result) -> str:
    """What makes an existing log unsafe to append to, or ''."""
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if st.st_uid != os.geteuid():
        return f"belongs to uid {st.st_uid}, not to you (uid {os.geteuid()})"
    if st.st_mode & 0o022:
        who = "its group and others" if st.st_mode & 0o022 == 0o022 else "its group" if st.st_mode & 0o020 else "others"
        return f"may be written by {who} (mode {stat.S_IMODE(st.st_mode):04o})"
    return ""


class Audit:
    """Appends records for one run; every text is masked with the run's secrets first.

    Every record names the runbook by absolute path and SHA-256 (and each python step's file), so which copy ran
    is never in doubt. The log is checked (owner, mode, no link) before the run starts."""

    def __init__(self, path: Path, runbook: str, file: str, params: dict[str, Any], dry_run: bool,
                 python_files: list[Path] | None = None) -> None:
        self.path, self.runbook, self.dry_run = path, runbook, dry_run
        self.file = str(Path(file).resolve())
        self.sha256 = digest(file)
        self.python = {str(p): digest(p) for p in python_files or []}
        self.run_id = uuid.uuid4().hex[:12]
        self.params = params
        self._lock = threading.Lock()
        os.close(open_log(path))

    def write(self, secrets: tuple[str, ...], **record: Any) -> None:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        line = {"run": self.run_id, "runbook": self.runbook, "file": self.file, "sha256": self.sha256,
                **({"python": self.python} if self.python else {}), "user": user, "dry_run": self.dry_run,
                "params": self.params, **record}
        text = json.dumps(mask_data(line, secrets), default=str)
        with self._lock, os.fdopen(open_log(self.path), "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
