"""Stacks: a compose file and the files it names, read on this machine for `docker stack deploy` on a manager."""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from dnet.errors import DnetError

COMPOSE = "docker-compose.yml"  # the compose file's name in the bundle sent to the manager


class StackError(DnetError):
    """A stack's compose file cannot be read or names files it cannot send."""


@dataclass(frozen=True)
class Compose:
    """One stack's compose file, the files it names (paths relative to it), and digests of all of it."""

    stack: str
    path: Path
    services: dict[str, str]  # service -> digest of its section
    files: dict[str, bytes] = field(repr=False)  # bundle path -> contents (the compose file as COMPOSE)
    digest: str = ""  # of the compose file and every file it names

    def bundle(self) -> bytes:
        """A tar of the compose file and the files it names, as the manager unpacks it."""
        import tarfile  # only apply sends one: validate stays quick

        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, data in sorted(self.files.items()):
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o600, 0
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()


def _named(doc: dict[str, Any]) -> list[str]:
    """The files a compose file names: services' env_file, top-level configs' and secrets' file."""
    out: list[str] = []
    for svc in (doc.get("services") or {}).values():
        env = (svc or {}).get("env_file") if isinstance(svc, dict) else None
        out += [env] if isinstance(env, str) else [e if isinstance(e, str) else e.get("path", "")
                                                   for e in env or [] if isinstance(e, (str, dict))]
    for kind in ("configs", "secrets"):
        for obj in (doc.get(kind) or {}).values():
            if isinstance(obj, dict) and isinstance(obj.get("file"), str):
                out.append(obj["file"])
    return [p for p in out if p]


def _read(path: Path, shown: str, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise StackError(f"{what}: cannot read {shown}: {exc.strerror or exc}") from None


def read(stack: str, file: str, base: Path) -> Compose:
    """Read a stack's compose file (relative to the inventory's folder) and the files it names."""
    path = base / file
    what = f"stack '{stack}'"
    text = _read(path, file, what)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else file
        raise StackError(f"{where}: {what}: not YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict) or not doc["services"]:
        raise StackError(f"{file}: {what}: a compose file needs a 'services' mapping with at least one service")
    files = {COMPOSE: text}
    for rel in _named(doc):
        p = PurePosixPath(rel)
        if p.is_absolute() or ".." in p.parts:
            raise StackError(f"{file}: {what}: '{rel}' is outside the compose file's folder; dnet sends only files "
                             "beside it or below it")
        files[str(p)] = _read(path.parent / p, str(PurePosixPath(file).parent / p), what)
    services = {str(name): hashlib.sha256(json.dumps(sec, sort_keys=True, default=str).encode()).hexdigest()[:12]
                for name, sec in doc["services"].items()}
    h = hashlib.sha256()
    for name, data in sorted(files.items()):
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return Compose(stack, path, services, files, h.hexdigest()[:12])


def service_names(stacks: dict[str, Any], base: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """Every stack service as Docker names it (STACK_service), and (stack, error) for files that cannot be read."""
    names: list[str] = []
    errors: list[tuple[str, str]] = []
    for name, st in stacks.items():
        try:
            names += [f"{name}_{svc}" for svc in read(name, st.file, base).services]
        except StackError as exc:
            errors.append((name, str(exc)))
    return names, errors
