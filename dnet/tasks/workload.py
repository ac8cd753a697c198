"""Workload tasks: images (stream or pull), containers and services."""
from __future__ import annotations

from typing import Any

from dnet.images import stream_image
from dnet.plan.model import Change
from dnet.tasks import Context
from dnet.transport.base import quote


def stream(ctx: Context, c: Change) -> str:
    stream_image(ctx.transports[c.host], c.data["image"])
    return "streamed from this machine"


def pull(ctx: Context, c: Change) -> str:
    ctx.transports[c.host].run(quote("docker", "pull", "-q", c.data["image"]), timeout=600)
    return "pulled"


def _label_args(labels: dict[str, str], flag: str = "--label") -> list[str]:
    return [a for k, v in labels.items() for a in (flag, f"{k}={v}")]


def container(ctx: Context, c: Change) -> str:
    spec: dict[str, Any] = c.data["spec"]
    t = ctx.transports[c.host]
    if c.action == "recreate":
        t.run(quote("docker", "rm", "-f", c.name) + " >/dev/null")
    args = ["docker", "run", "-d", "--name", c.name, "--hostname", c.name, "--restart", "unless-stopped",
            *_label_args(c.data["labels"])]
    nets = spec["networks"]
    if nets:
        args += ["--network", nets[0]]
        for alias in spec["aliases"]:
            args += ["--network-alias", alias]
    for p in spec["ports"]:
        args += ["-p", p]
    args.append(spec["image"])
    args += spec["command"] or []
    t.run(quote(*args) + " >/dev/null")
    for net in nets[1:]:
        extra = [a for alias in spec["aliases"] for a in ("--alias", alias)]
        t.run(quote("docker", "network", "connect", *extra, net, c.name))
    return f"{c.action}d: {c.detail}"


def start(ctx: Context, c: Change) -> str:
    ctx.transports[c.host].run(quote("docker", "start", c.name) + " >/dev/null")
    return "started"


def remove_container(ctx: Context, c: Change) -> str:
    ctx.transports[c.host].run(quote("docker", "rm", "-f", c.name) + " >/dev/null")
    return "removed"


def service(ctx: Context, c: Change) -> str:
    spec: dict[str, Any] = c.data["spec"]
    t = ctx.transports[c.host]
    if c.action == "recreate":
        r = t.run(quote("docker", "service", "rm", c.name), check=False)
        if not r.ok and not any(m in r.stderr.lower() for m in ("not found", "no such service")):
            r.check()
    args = ["docker", "service", "create", "--detach", "--name", c.name, *_label_args(c.data["labels"]),
            *_label_args({"dnet.managed": "true", "dnet.service": c.name}, "--container-label"),
            "--replicas", str(spec["replicas"]), "--endpoint-mode", spec["endpoint_mode"]]
    for net in spec["networks"]:
        args += ["--network", net]
    for p in spec["ports"]:
        args += ["--publish", f"published={p['published']},target={p['target']},protocol={p['protocol']},mode={p['mode']}"]
    # A side-loaded image is pinned by ID so that no node reaches for a registry.
    image = spec["image_id"] or spec["image"]
    if spec["image_id"]:
        args.append("--no-resolve-image")
    args.append(image)
    args += spec["command"] or []
    t.run(quote(*args) + " >/dev/null")
    return f"{c.action}d: {c.detail}"


def remove_service(ctx: Context, c: Change) -> str:
    ctx.transports[c.host].run(quote("docker", "service", "rm", c.name) + " >/dev/null")
    return "removed"
