"""What a workload runs with, resolved on this machine: env (with ${VAR} read and masked), mounts, health,
resources, placement, update policy, and secret/config files (named by a digest of their contents)."""
from __future__ import annotations

import csv
import hashlib
import io
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dnet.errors import DnetError
from dnet.inventory.workload import ENV_REF, FileRef, Mount, RunOptions, memory_bytes


class SpecError(DnetError):
    """A workload cannot be specified on this machine: an unset ${VAR}, a missing file."""


def digest(cluster: str, name: str, data: bytes) -> str:
    """A short digest of secret data that a change can be seen by: salted and slow (scrypt), so that the digest
    in labels and plans does not let a guessed weak password be confirmed quickly."""
    salt = f"dnet:{cluster}:{name}".encode()
    return hashlib.scrypt(data, salt=salt, n=1 << 12, r=8, p=1, dklen=8).hex()


@dataclass(frozen=True)
class EnvVar:
    key: str
    value: str = field(repr=False)  # what the process gets
    shown: str  # what output and labels show: the value, or where it came from and a digest when secret
    secret: bool = False


@dataclass(frozen=True)
class FileSpec:
    """A swarm secret or config made from a file on this machine."""

    name: str  # the inventory's name
    object: str  # the swarm object's name: NAME-DIGEST, new when the contents change
    target: str
    path: str = field(compare=False)
    digest: str = ""

    def flag(self) -> str:
        return f"source={self.object},target={self.target}"


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SpecError(f"{what}: cannot read {path}: {exc.strerror or exc}") from None


def env(owner: str, o: RunOptions, base: Path, cluster: str, environ: Mapping[str, str]) -> tuple[EnvVar, ...]:
    """The workload's environment: env_file's lines first, then `env` (which wins), ${VAR} resolved."""
    out: dict[str, EnvVar] = {}
    if o.env_file:
        path = base / o.env_file
        text = _read(path, f"{owner}: env_file").decode(errors="replace")
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, eq, value = line.partition("=")
            key = key.removeprefix("export ").strip()
            if not eq or not key.isidentifier():
                raise SpecError(f"{path}:{n}: {owner}: expected NAME=value")
            out[key] = EnvVar(key, value, f"(env_file)#{digest(cluster, key, value.encode())}", True)
    for key, raw in o.env.items():
        refs = ENV_REF.findall(raw)
        missing = [r for r in refs if r not in environ]
        if missing:
            raise SpecError(f"{owner}: env {key} uses ${{{missing[0]}}}, which is not set on this machine; "
                            f"export {missing[0]} before running dnet")
        value = ENV_REF.sub(lambda m: environ[m[1]], raw.replace("$$", "\0")).replace("\0", "$")
        if refs:
            out[key] = EnvVar(key, value, f"{raw}#{digest(cluster, key, value.encode())}", True)
        else:
            out[key] = EnvVar(key, value, value)
    return tuple(out[k] for k in sorted(out))


def mount(m: Mount) -> str:
    """The --mount value (CSV, quoted where Docker's CSV reader needs it)."""
    parts = [f"type={m.type}"] + ([f"source={m.source}"] if m.source else []) + [f"target={m.target}"]
    parts += ["readonly"] if m.readonly else []
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(parts)
    return buf.getvalue()


def command(cmd: list[str] | str | None) -> list[str] | None:
    if cmd is None:
        return None
    return shlex.split(cmd) if isinstance(cmd, str) else list(cmd)


def healthcheck(o: RunOptions) -> dict[str, Any] | None:
    h = o.healthcheck
    if h is None:
        return None
    test = h.test if isinstance(h.test, str) else shlex.join(h.test)
    out: dict[str, Any] = {"test": test}
    for k in ("interval", "timeout", "retries", "start_period"):
        if getattr(h, k) is not None:
            out[k] = getattr(h, k)
    return out


def resources(o: RunOptions) -> dict[str, Any] | None:
    r = o.resources
    if r is None:
        return None
    out: dict[str, Any] = {}
    for part in ("limits", "reservations"):
        res = getattr(r, part)
        got = {k: v for k, v in (("cpus", res.cpus), ("memory", res.memory and memory_bytes(res.memory)))
               if v is not None}
        if got:
            out[part] = got
    return out or None


def files(owner: str, refs: Mapping[str, FileRef], kind: str, base: Path, cluster: str) -> tuple[FileSpec, ...]:
    out = []
    for name, ref in sorted(refs.items()):
        path = base / ref.file
        data = _read(path, f"{owner}: {kind} {name}")
        d = digest(cluster, name, data)
        target = ref.target or (f"/run/secrets/{name}" if kind == "secret" else f"/{name}")
        out.append(FileSpec(name, f"{name}-{d[:12]}", target, str(path), d))
    return tuple(out)


def environ() -> Mapping[str, str]:
    return os.environ
