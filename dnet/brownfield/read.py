"""Read what runs (`docker inspect` of services, containers and networks) back into inventory entries.

Each reader returns the entry as the inventory would spell it, and appends to `notes` what the model cannot
express ("service api: StopGracePeriod 30s: no inventory key; dnet leaves it as it is"). Import writes the
entries; plan uses the same readers to compare an object dnet did not make with what the inventory declares.
"""
from __future__ import annotations

import re
from typing import Any

from dnet import CLUSTER_LABEL, MANAGED_LABEL

ENGINE_NETWORKS = frozenset({"ingress", "docker_gwbridge", "bridge", "host", "none"})
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# labels that Docker or dnet write: not the operator's
OWN_LABELS = re.compile(r"^(dnet\.|com\.docker\.swarm\.)")
# Docker's defaults for an update or rollback policy (as `docker service create` sets them)
POLICY_DEFAULTS: dict[str, Any] = {"Parallelism": 1, "Delay": 0, "FailureAction": "pause", "Monitor": 5_000_000_000,
                                   "MaxFailureRatio": 0, "Order": "stop-first"}
# container fields the model has no key for, and the value they have when nobody set them
UNMODELLED_CONTAINER: dict[str, Any] = {
    "Hostname": None, "Domainname": "", "StopSignal": None, "StopTimeout": None, "Tty": False, "OpenStdin": False}
UNMODELLED_HOSTCONFIG: dict[str, Any] = {
    "Privileged": False, "CapAdd": None, "Dns": [], "ExtraHosts": None, "Sysctls": None, "ReadonlyRootfs": False,
    "Devices": [], "PidMode": "", "IpcMode": "private", "Init": None, "LogConfig": {"Type": "json-file", "Config": {}}}
UNMODELLED_TASKSPEC = ("Hostname", "DNSConfig", "Hosts", "Init", "StopGracePeriod", "StopSignal", "CapabilityAdd",
                       "CapabilityDrop", "Sysctls", "ReadOnly", "Privileges", "TTY", "OpenStdin", "Groups",
                       "Ulimits")


def duration(ns: int | float) -> str:
    """Nanoseconds as the inventory's duration text (30s, 1m30s, 500ms)."""
    ns = int(ns)
    if ns % 1_000_000_000:
        return f"{ns // 1_000_000}ms" if ns % 1_000_000 == 0 else f"{ns}ns"
    s = ns // 1_000_000_000
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return "".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m"), (s, "s")) if v) or "0s"


def _memory(n: int) -> str:
    for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def _cpus(nano: int) -> float | int:
    v = nano / 1e9
    return int(v) if v == int(v) else v


def user_labels(labels: dict[str, Any] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (labels or {}).items() if not OWN_LABELS.match(str(k))}


def image_tag(image: str) -> str:
    """The tag a service was started with (Docker appends the digest it resolved: `busybox:1@sha256:...`)."""
    return image.split("@", 1)[0] if "@sha256:" in image else image


def _env(items: list[str] | None, drop_path: bool = False) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        k, _, v = item.partition("=")
        if drop_path and k == "PATH" and v == DEFAULT_PATH:
            continue
        out[k] = v.replace("$", "$$")  # the inventory reads ${VAR} from the operator's environment
    return out


def _health(h: dict[str, Any] | None, who: str, notes: list[str]) -> dict[str, Any] | None:
    if not h or not h.get("Test"):
        return None
    test = list(h["Test"])
    if test[0] == "NONE":
        notes.append(f"{who}: health check disabled (NONE): no inventory key; dnet leaves it as it is")
        return None
    out: dict[str, Any] = {"test": test[1] if test[0] == "CMD-SHELL" and len(test) == 2 else test[1:]}
    for key, name in (("Interval", "interval"), ("Timeout", "timeout"), ("StartPeriod", "start_period")):
        if h.get(key):
            out[name] = duration(h[key])
    if h.get("Retries"):
        out["retries"] = h["Retries"]
    return out


def _resources(limits: dict[str, Any], reservations: dict[str, Any], cpu: str, mem: str) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    for part, src in (("limits", limits), ("reservations", reservations)):
        got: dict[str, Any] = {}
        if src.get(cpu):
            got["cpus"] = _cpus(src[cpu])
        if src.get(mem):
            got["memory"] = _memory(src[mem])
        if got:
            out[part] = got
    return out or None


def _mount(m: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": m.get("Type", "volume")}
    if m.get("Source"):
        out["source"] = m["Source"]
    out["target"] = m.get("Target", "")
    if m.get("ReadOnly"):
        out["readonly"] = True
    return out


def _set(value: Any) -> bool:
    """Whether a value holds anything (Docker reports unset nested settings as objects of nulls)."""
    if isinstance(value, dict):
        return any(_set(v) for v in value.values())
    if isinstance(value, list):
        return bool(value)
    return value not in (None, "", False, 0)


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if value not in (None, {}, [], ""):
        out[key] = value


def _policy(p: dict[str, Any] | None, who: str, what: str, notes: list[str]) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    for key, default in POLICY_DEFAULTS.items():
        v = (p or {}).get(key, default)
        if v == default:
            continue
        if key == "Parallelism":
            out["parallelism"] = v
        elif key == "Delay":
            out["delay"] = duration(v)
        elif key == "FailureAction":
            out["failure_action"] = v
        elif key == "Order":
            out["order"] = v
        else:
            notes.append(f"{who}: {what} {key} {v}: no inventory key; dnet leaves it as it is")
    return out or None


def service(raw: dict[str, Any], net_names: dict[str, str], notes: list[str]) -> dict[str, Any] | None:
    """A service entry, or None (with a note saying why) when it cannot be imported."""
    spec = raw.get("Spec") or {}
    name = spec.get("Name", "?")
    who = f"service {name}"
    task = spec.get("TaskTemplate") or {}
    cs = task.get("ContainerSpec") or {}
    if cs.get("Secrets") or cs.get("Configs"):
        notes.append(f"{who}: not imported: it uses swarm secrets or configs, whose data Docker never gives back; "
                     "declare it with the files (secrets:/configs:) and set adopt: true")
        return None
    out: dict[str, Any] = {"image": image_tag(cs.get("Image", ""))}
    if cs.get("Command"):
        out["entrypoint"] = list(cs["Command"])
    _put(out, "command", list(cs.get("Args") or []))
    mode = spec.get("Mode") or {}
    if "Global" in mode:
        out["mode"] = "global"
    else:
        out["replicas"] = (mode.get("Replicated") or {}).get("Replicas", 1)
    nets = [net_names.get(n.get("Target", ""), n.get("Target", "")) for n in task.get("Networks") or []]
    _put(out, "networks", nets)
    for n in task.get("Networks") or []:
        if n.get("Aliases"):
            notes.append(f"{who}: network aliases {', '.join(n['Aliases'])}: no inventory key; dnet leaves them")
    ep = spec.get("EndpointSpec") or {}
    if ep.get("Mode", "vip") != "vip":
        out["endpoint_mode"] = ep["Mode"]
    ports = []
    for p in ep.get("Ports") or []:
        port: dict[str, Any] = {"published": p.get("PublishedPort"), "target": p.get("TargetPort")}
        if p.get("Protocol", "tcp") != "tcp":
            port["protocol"] = p["Protocol"]
        if p.get("PublishMode", "ingress") != "ingress":
            port["mode"] = p["PublishMode"]
        ports.append(port)
    _put(out, "ports", ports)
    _put(out, "env", _env(cs.get("Env")))
    _put(out, "mounts", [_mount(m) for m in cs.get("Mounts") or []])
    _put(out, "user", cs.get("User"))
    _put(out, "workdir", cs.get("Dir"))
    _put(out, "labels", user_labels(spec.get("Labels")))
    _put(out, "healthcheck", _health(cs.get("Healthcheck"), who, notes))
    res = task.get("Resources") or {}
    _put(out, "resources", _resources(res.get("Limits") or {}, res.get("Reservations") or {}, "NanoCPUs",
                                      "MemoryBytes"))
    place = task.get("Placement") or {}
    placement: dict[str, Any] = {}
    _put(placement, "constraints", list(place.get("Constraints") or []))
    _put(placement, "preferences", [{"spread": p["Spread"]["SpreadDescriptor"]} for p in place.get("Preferences") or []
                                    if "Spread" in p])
    _put(out, "placement", placement)
    if place.get("MaxReplicas"):
        notes.append(f"{who}: placement max replicas per node {place['MaxReplicas']}: no inventory key; dnet leaves it")
    _put(out, "update", _policy(spec.get("UpdateConfig"), who, "update", notes))
    _put(out, "rollback", _policy(spec.get("RollbackConfig"), who, "rollback", notes))
    for key in UNMODELLED_TASKSPEC:
        if _set(cs.get(key)):
            notes.append(f"{who}: {key} {cs[key]}: no inventory key; dnet leaves it as it is")
    if user_labels(cs.get("Labels")):
        notes.append(f"{who}: container labels {user_labels(cs.get('Labels'))}: no inventory key; dnet leaves them "
                     "as they are")
    return out


def _restart(policy: dict[str, Any] | None) -> str:
    name = (policy or {}).get("Name") or "no"
    if name == "on-failure" and (policy or {}).get("MaximumRetryCount"):
        return f"on-failure:{policy['MaximumRetryCount']}"  # type: ignore[index]
    return str(name)


def _ports(bindings: dict[str, Any] | None) -> list[str]:
    out = []
    for key, binds in sorted((bindings or {}).items()):
        target, _, proto = key.partition("/")
        for b in binds or []:
            ip = b.get("HostIp") or ""
            ip = "" if ip in ("", "0.0.0.0", "::") else f"{ip}:"
            out.append(f"{ip}{b.get('HostPort')}:{target}/{proto or 'tcp'}")
    return out


def _binds(binds: list[str] | None) -> list[dict[str, Any]]:
    """-v SRC:DST[:ro] as mounts (a SRC without a slash is a named volume)."""
    out = []
    for b in binds or []:
        parts = b.split(":")
        src, dst = parts[0], parts[1] if len(parts) > 1 else parts[0]
        m: dict[str, Any] = {"type": "bind" if src.startswith("/") else "volume", "source": src, "target": dst}
        if len(parts) > 2 and "ro" in parts[2].split(","):
            m["readonly"] = True
        out.append(m)
    return out


def container(raw: dict[str, Any], host: str, notes: list[str]) -> dict[str, Any]:
    """A standalone container entry (what `docker inspect` shows, image defaults included: the same container)."""
    cfg, hc = raw.get("Config") or {}, raw.get("HostConfig") or {}
    who = f"container {raw.get('Name', '?').lstrip('/')}"
    out: dict[str, Any] = {"host": host, "image": cfg.get("Image", "")}
    nets = raw.get("NetworkSettings", {}).get("Networks") or {}
    names = [n for n in nets if n != "bridge"]
    _put(out, "networks", names)
    aliases: list[str] = []
    for n in names:
        for a in nets[n].get("Aliases") or []:
            if a not in aliases and a not in (raw.get("Id", "")[:12], raw.get("Name", "").lstrip("/")):
                aliases.append(a)
        if (nets[n].get("IPAMConfig") or {}).get("IPv4Address"):
            notes.append(f"{who}: fixed address {nets[n]['IPAMConfig']['IPv4Address']} on {n}: no inventory key; "
                         "a recreate would give it a dynamic one")
    _put(out, "aliases", aliases)
    _put(out, "ports", _ports(hc.get("PortBindings")))
    if cfg.get("Entrypoint"):
        out["entrypoint"] = list(cfg["Entrypoint"])
    _put(out, "command", list(cfg.get("Cmd") or []))
    out["restart"] = _restart(hc.get("RestartPolicy"))
    _put(out, "env", _env(cfg.get("Env"), drop_path=True))
    mounts = [_mount(m) for m in hc.get("Mounts") or []] + _binds(hc.get("Binds"))
    mounts += [{"type": "tmpfs", "target": t} for t in sorted(hc.get("Tmpfs") or {})]
    _put(out, "mounts", mounts)
    _put(out, "user", cfg.get("User"))
    _put(out, "workdir", cfg.get("WorkingDir"))
    _put(out, "labels", user_labels(cfg.get("Labels")))
    _put(out, "healthcheck", _health(cfg.get("Healthcheck"), who, notes))
    _put(out, "resources", _resources({"NanoCpus": hc.get("NanoCpus"), "Memory": hc.get("Memory")},
                                      {"Memory": hc.get("MemoryReservation")}, "NanoCpus", "Memory"))
    for key, default in UNMODELLED_CONTAINER.items():
        if key == "Hostname" or cfg.get(key) in (None, default):
            continue
        notes.append(f"{who}: {key} {cfg[key]}: no inventory key; dnet leaves it as it is")
    for key, default in UNMODELLED_HOSTCONFIG.items():
        if hc.get(key) not in (None, default) and not (key == "LogConfig" and hc[key].get("Type") == "json-file"):
            notes.append(f"{who}: {key} {hc[key]}: no inventory key; dnet leaves it as it is")
    return out


def network(raw: dict[str, Any], who: str, notes: list[str]) -> dict[str, Any] | None:
    """An overlay or bridge network entry (None, with a note, for other drivers)."""
    driver = raw.get("Driver", "")
    if driver not in ("overlay", "bridge"):
        notes.append(f"{who}: not imported: driver {driver}: dnet makes overlay and bridge networks only")
        return None
    out: dict[str, Any] = {"driver": driver}
    ipam = [c for c in (raw.get("IPAM") or {}).get("Config") or [] if c.get("Subnet") and ":" not in c["Subnet"]]
    if ipam:
        _put(out, "subnet", ipam[0]["Subnet"])
        _put(out, "gateway", ipam[0].get("Gateway"))
    if len(ipam) > 1:
        notes.append(f"{who}: more subnets than the first ({', '.join(c['Subnet'] for c in ipam[1:])}): the "
                     "inventory has one subnet per network")
    for key in ("attachable", "internal"):
        if raw.get(key.capitalize()):
            out[key] = True
    opts = raw.get("Options") or {}
    if "encrypted" in opts:
        out["encrypted"] = True
    if str(opts.get("com.docker.network.driver.mtu", "")).isdigit():
        out["mtu"] = int(opts["com.docker.network.driver.mtu"])
    return out


def is_engine_made(raw: dict[str, Any]) -> bool:
    return raw.get("Name") in ENGINE_NETWORKS or bool(raw.get("Ingress"))


def foreign(labels: dict[str, str]) -> bool:
    """Not dnet's own (a lab's, a probe's or dnet-made objects are not imported as hand-made)."""
    return labels.get(MANAGED_LABEL) != "true" and CLUSTER_LABEL not in labels
