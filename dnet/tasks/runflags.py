"""docker run / service create / service update flags for a workload's run options.

Env goes to docker on stdin (`--env-file /dev/stdin`) where Docker allows it, so values from ${VAR} are not on a
command line; `docker service update` has no such flag, so an update passes changed values with --env-add.
"""
from __future__ import annotations

import csv
import shlex
from typing import Any

from dnet import CLUSTER_LABEL, MANAGED_LABEL
from dnet.images import PROBE_IMAGE
from dnet.inventory.workload import POLICY_DEFAULTS
from dnet.plan.desired import ContainerSpec, ServiceSpec, Workload


def env_stdin(spec: Workload) -> tuple[list[str], bytes | None]:
    """The flag that reads env from stdin, and what to send; none when the workload has no env."""
    env = getattr(spec, "env", ())
    if not env:
        return [], None
    return ["--env-file", "/dev/stdin"], "".join(f"{e.key}={e.value}\n" for e in env).encode()


def mount_flag(mount: str, cluster: str) -> str:
    """A --mount value; named volumes carry dnet's labels, so that destroy --volumes finds them."""
    if mount.startswith("type=volume"):
        return f"{mount},volume-label={MANAGED_LABEL}=true,volume-label={CLUSTER_LABEL}={cluster}"
    return mount


def mount_target(mount: str) -> str:
    row = next(csv.reader([mount]))
    return next((p.removeprefix("target=") for p in row if p.startswith("target=")), "")


def _health(h: dict[str, Any] | None) -> list[str]:
    if not h:
        return []
    out = ["--health-cmd", h["test"]]
    for k in ("interval", "timeout", "retries", "start_period"):
        if k in h:
            out += [f"--health-{k.replace('_', '-')}", str(h[k])]
    return out


def _resources(r: dict[str, Any] | None, service: bool) -> list[str]:
    r = r or {}
    lim, res = r.get("limits", {}), r.get("reservations", {})
    names: tuple[tuple[str, Any], ...]
    if service:
        names = (("--limit-cpu", lim.get("cpus")), ("--limit-memory", lim.get("memory")),
                 ("--reserve-cpu", res.get("cpus")), ("--reserve-memory", res.get("memory")))
    else:
        names = (("--cpus", lim.get("cpus")), ("--memory", lim.get("memory")),
                 ("--memory-reservation", res.get("memory")))
    return [a for flag, v in names if v is not None for a in (flag, str(v))]


def _common(spec: Workload, cluster: str) -> list[str]:
    s: Any = spec
    out: list[str] = []
    for m in s.mounts:
        out += ["--mount", mount_flag(m, cluster)]
    if s.user:
        out += ["--user", s.user]
    if s.workdir:
        out += ["--workdir", s.workdir]
    for k, v in s.labels.items():
        out += ["--label", f"{k}={v}"]
    return out + _health(s.healthcheck)


def container_args(spec: ContainerSpec, cluster: str) -> tuple[list[str], list[str]]:
    """Flags before the image, and the arguments after it (docker run's --entrypoint takes one program; the
    rest of an entrypoint list goes before the command)."""
    flags = ["--restart", spec.restart, *_common(spec, cluster), *_resources(spec.resources, False)]
    after = list(spec.command or [])
    if spec.entrypoint:
        flags += ["--entrypoint", spec.entrypoint[0]]
        after = spec.entrypoint[1:] + after
    return flags, after


def _policy(prefix: str, p: dict[str, Any] | None, always: bool = False) -> list[str]:
    p = p or {}
    return [a for k, default in POLICY_DEFAULTS.items() if k in p or always
            for a in (f"--{prefix}-{k.replace('_', '-')}", str(p.get(k, default)))]


def service_args(spec: ServiceSpec, cluster: str) -> list[str]:
    """`docker service create` flags for everything but name, labels, networks, ports and image."""
    out = ["--mode", "global"] if spec.mode == "global" else ["--replicas", str(spec.replicas)]
    out += [*_common(spec, cluster), *_resources(spec.resources, True)]
    if spec.entrypoint:
        out += ["--entrypoint", shlex.join(spec.entrypoint)]
    for c in spec.constraints:
        out += ["--constraint", c]
    for p in spec.preferences:
        out += ["--placement-pref", p]
    out += _policy("update", spec.update) + _policy("rollback", spec.rollback)
    for f in spec.secrets:
        out += ["--secret", f.flag()]
    for f in spec.configs:
        out += ["--config", f.flag()]
    return out


def _set_diff(flag: str, old: list[str], new: list[str]) -> list[str]:
    """--X-rm for what went, --X-add for what came (Docker applies removals to the old list, then adds)."""
    return [a for v in old if v not in new for a in (f"--{flag}-rm", v)] + \
        [a for v in new if v not in old for a in (f"--{flag}-add", v)]


def update_args(spec: ServiceSpec, old: dict[str, Any], fields: tuple[str, ...], cluster: str) -> list[str]:
    """`docker service update` flags that take the service from `old` (its dnet.shown label) to spec."""
    new: dict[str, Any] = spec.as_dict()
    out: list[str] = []
    for f in fields:
        o, n = old.get(f), new.get(f)
        if f == "image" or (f == "image_id" and "image" not in fields):  # one --image for either or both
            local = spec.image_id or spec.image == PROBE_IMAGE  # in no registry: never resolved
            out += ["--image", spec.image_id or spec.image] + (["--no-resolve-image"] if local else [])
        elif f == "command":
            out += ["--args", shlex.join(spec.command or [])]
        elif f == "entrypoint":
            out += ["--entrypoint", shlex.join(spec.entrypoint or [])]
        elif f == "replicas" and spec.mode != "global":
            out += ["--replicas", str(spec.replicas)]
        elif f == "endpoint_mode":
            out += ["--endpoint-mode", spec.endpoint_mode]
        elif f == "networks":
            out += _set_diff("network", o or [], n or [])
        elif f == "ports":
            was = [",".join(f"{k}={v}" for k, v in p.items() if k in ("published", "target", "protocol", "mode"))
                   for p in (o or [])]
            out += _set_diff("publish", was, [p.flag() for p in spec.ports])
        elif f == "env":
            o, n = o or {}, n or {}
            out += [a for k in sorted(o) if k not in n for a in ("--env-rm", k)]
            out += [a for e in spec.env if o.get(e.key) != e.shown for a in ("--env-add", f"{e.key}={e.value}")]
        elif f == "labels":
            o, n = o or {}, n or {}
            out += [a for k in sorted(o) if k not in n for a in ("--label-rm", k)]
            out += [a for k, v in sorted(n.items()) if o.get(k) != v for a in ("--label-add", f"{k}={v}")]
        elif f == "mounts":
            gone = {mount_target(m) for m in (o or [])} - {mount_target(m) for m in (n or [])}
            out += [a for t in sorted(gone) for a in ("--mount-rm", t)]
            out += [a for m in (n or []) if m not in (o or []) for a in ("--mount-add", mount_flag(m, cluster))]
        elif f in ("user", "workdir"):
            out += [f"--{f}", n or ""]
        elif f == "healthcheck":
            n = n or {}
            out += _health(n)
            out += [a for k in ("interval", "timeout", "start_period") if k not in n
                    for a in (f"--health-{k.replace('_', '-')}", "0s")]
            out += ["--health-retries", "0"] if "retries" not in n else []
        elif f == "resources":
            r = n or {}
            lim, res = r.get("limits", {}), r.get("reservations", {})
            out += ["--limit-cpu", str(lim.get("cpus", 0)), "--limit-memory", str(lim.get("memory", 0)),
                    "--reserve-cpu", str(res.get("cpus", 0)), "--reserve-memory", str(res.get("memory", 0))]
        elif f == "constraints":
            out += _set_diff("constraint", o or [], n or [])
        elif f == "preferences":
            out += _set_diff("placement-pref", o or [], n or [])
        elif f in ("update", "rollback"):
            out += _policy(f, n, always=True)
        elif f in ("secrets", "configs"):
            one = f[:-1]
            had = {k: f"source={v['object']},target={v['target']}" for k, v in (o or {}).items()}
            now = {x.name: x.flag() for x in (spec.secrets if f == "secrets" else spec.configs)}
            out += [a for k, v in had.items() if now.get(k) != v for a in (f"--{one}-rm", v.split(",")[0][7:])]
            out += [a for k, v in now.items() if had.get(k) != v for a in (f"--{one}-add", v)]
    return out
