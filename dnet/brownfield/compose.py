"""A stack's services between the inventory's service entries and a compose file (what `docker stack deploy`
reads): import writes a stack's compose file from what runs; plan reads one back to compare it with what runs."""
from __future__ import annotations

import shlex
from typing import Any

from dnet.errors import DnetError

NAMESPACE = "com.docker.stack.namespace"
STACK_LABELS = (NAMESPACE, "com.docker.stack.image")
VERSION = "3.8"


class ComposeError(DnetError):
    """A compose file uses something dnet cannot compare with what runs."""


def _short(stack: str, name: str) -> str | None:
    return name[len(stack) + 1:] if name.startswith(f"{stack}_") else None


def to_compose(stack: str, services: dict[str, dict[str, Any]], networks: dict[str, dict[str, Any]]
               ) -> dict[str, Any]:
    """A compose document for a stack's services (inventory entries, named STACK_x) and networks."""
    doc: dict[str, Any] = {"version": VERSION, "services": {}}
    nets: dict[str, Any] = {}
    vols: dict[str, Any] = {}
    for full, e in services.items():
        svc: dict[str, Any] = {"image": e["image"]}
        for key, to in (("entrypoint", "entrypoint"), ("command", "command"), ("user", "user"),
                        ("workdir", "working_dir"), ("env", "environment")):
            if key in e:
                svc[to] = e[key]
        if "healthcheck" in e:
            h = dict(e["healthcheck"])
            test = h.pop("test")
            svc["healthcheck"] = {"test": ["CMD-SHELL", test] if isinstance(test, str) else ["CMD", *test], **h}
        named = []
        for n in e.get("networks", []):
            short = _short(stack, n)
            if short is None:
                nets[n] = {"external": True, "name": n}
                named.append(n)
            else:
                nets[short] = _network(networks.get(n, {}))
                named.append(short)
        if named:
            svc["networks"] = named
        if e.get("ports"):
            svc["ports"] = [{"target": p["target"], "published": p["published"], "protocol": p.get("protocol", "tcp"),
                             "mode": p.get("mode", "ingress")} for p in e["ports"]]
        volumes = []
        for m in e.get("mounts", []):
            v = {"type": m["type"], "target": m["target"]}
            if m.get("source"):
                short = _short(stack, m["source"]) if m["type"] == "volume" else None
                v["source"] = short or m["source"]
                if m["type"] == "volume":
                    vols[v["source"]] = {} if short else {"external": True, "name": m["source"]}
            if m.get("readonly"):
                v["read_only"] = True
            volumes.append(v)
        if volumes:
            svc["volumes"] = volumes
        deploy: dict[str, Any] = {}
        if e.get("mode") == "global":
            deploy["mode"] = "global"
        else:
            deploy["replicas"] = e.get("replicas", 1)
        if e.get("endpoint_mode"):
            deploy["endpoint_mode"] = e["endpoint_mode"]
        labels = {k: v for k, v in e.get("labels", {}).items() if k not in STACK_LABELS}
        if labels:
            deploy["labels"] = labels
        if "placement" in e:
            deploy["placement"] = e["placement"]
        if "resources" in e:
            deploy["resources"] = {part: {k: str(v) if k == "cpus" else v for k, v in r.items()}
                                   for part, r in e["resources"].items()}
        for key, to in (("update", "update_config"), ("rollback", "rollback_config")):
            if key in e:
                deploy[to] = e[key]
        svc["deploy"] = deploy
        short = _short(stack, full) or full
        doc["services"][short] = svc
    if nets:
        doc["networks"] = nets
    if vols:
        doc["volumes"] = vols
    return doc


def _network(e: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"driver": "overlay"}
    for key in ("attachable", "internal"):
        if e.get(key):
            out[key] = True
    if e.get("encrypted"):
        out["driver_opts"] = {"encrypted": ""}
    if e.get("mtu"):
        out.setdefault("driver_opts", {})["com.docker.network.driver.mtu"] = str(e["mtu"])
    if e.get("subnet"):
        out["ipam"] = {"config": [{"subnet": e["subnet"]}]}
    return out


def _env(svc: dict[str, Any], files: dict[str, bytes], who: str) -> dict[str, str]:
    out: dict[str, str] = {}
    env_files = svc.get("env_file") or []
    for path in [env_files] if isinstance(env_files, str) else env_files:
        path = path if isinstance(path, str) else path.get("path", "")
        for line in files.get(path.removeprefix("./"), b"").decode(errors="replace").splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, _, v = line.partition("=")
                out[k.strip()] = v.replace("$", "$$")
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    if not isinstance(env, dict):
        raise ComposeError(f"{who}: environment is neither a mapping nor a list")
    out.update({str(k): "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
                for k, v in env.items()})
    return out


def from_compose(stack: str, doc: dict[str, Any], files: dict[str, bytes]) -> dict[str, dict[str, Any]]:
    """Each service of a compose document as the inventory entry of the service Docker makes (named STACK_x),
    with the labels `docker stack deploy` adds."""
    nets = doc.get("networks") or {}
    vols = doc.get("volumes") or {}
    out: dict[str, dict[str, Any]] = {}
    for short, svc in (doc.get("services") or {}).items():
        who = f"stack '{stack}': service {short}"
        if not isinstance(svc, dict):
            raise ComposeError(f"{who}: not a mapping")
        e: dict[str, Any] = {"image": svc.get("image", "")}
        for key, to in (("entrypoint", "entrypoint"), ("command", "command"), ("user", "user"),
                        ("working_dir", "workdir")):
            if svc.get(key) is not None:  # a command as text is split as a shell would (no sh -c)
                e[to] = shlex.split(svc[key]) if key in ("entrypoint", "command") and isinstance(svc[key], str) \
                    else svc[key]
        env = _env(svc, files, who)
        if env:
            e["env"] = env
        if svc.get("healthcheck"):
            h = dict(svc["healthcheck"])
            test = h.pop("test")
            if isinstance(test, list) and test and test[0] == "CMD-SHELL":
                h["test"] = test[1]
            elif isinstance(test, list) and test and test[0] == "CMD":
                h["test"] = test[1:]
            else:
                h["test"] = test
            e["healthcheck"] = h
        names = svc.get("networks") or ["default"]
        names = list(names) if isinstance(names, (list, dict)) else []
        e["networks"] = [(nets.get(n) or {}).get("name", n) if (nets.get(n) or {}).get("external")
                         else f"{stack}_{n}" for n in names]
        ports = []
        for p in svc.get("ports") or []:
            if not isinstance(p, dict):
                raise ComposeError(f"{who}: ports in short form ({p}): dnet compares the long form "
                                   "(target, published, protocol, mode)")
            port = {"published": p["published"], "target": p["target"]}
            if p.get("protocol", "tcp") != "tcp":
                port["protocol"] = p["protocol"]
            if p.get("mode", "ingress") != "ingress":
                port["mode"] = p["mode"]
            ports.append(port)
        if ports:
            e["ports"] = ports
        mounts = []
        for v in svc.get("volumes") or []:
            if not isinstance(v, dict):
                raise ComposeError(f"{who}: volumes in short form ({v}): dnet compares the long form")
            m: dict[str, Any] = {"type": v.get("type", "volume"), "target": v["target"]}
            if v.get("source"):
                decl = vols.get(v["source"]) or {}
                external = m["type"] == "volume" and decl.get("external")
                m["source"] = decl.get("name", v["source"]) if external else \
                    f"{stack}_{v['source']}" if m["type"] == "volume" else v["source"]
            if v.get("read_only"):
                m["readonly"] = True
            mounts.append(m)
        if mounts:
            e["mounts"] = mounts
        deploy = svc.get("deploy") or {}
        if deploy.get("mode") == "global":
            e["mode"] = "global"
        else:
            e["replicas"] = deploy.get("replicas", 1)
        if deploy.get("endpoint_mode"):
            e["endpoint_mode"] = deploy["endpoint_mode"]
        e["labels"] = {**{str(k): str(v) for k, v in (deploy.get("labels") or {}).items()},
                       NAMESPACE: stack, "com.docker.stack.image": e["image"]}
        if deploy.get("placement"):
            e["placement"] = deploy["placement"]
        if deploy.get("resources"):
            e["resources"] = {part: {k: float(v) if k == "cpus" else v for k, v in r.items()}
                              for part, r in deploy["resources"].items()}
        for key, to in (("update_config", "update"), ("rollback_config", "rollback")):
            if deploy.get(key):
                e[to] = deploy[key]
        out[f"{stack}_{short}"] = e
    return out
