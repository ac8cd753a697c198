"""Workload tasks: images (stream or pull), containers and services."""
from __future__ import annotations

from dataclasses import replace

from dnet import CLUSTER_LABEL, MANAGED_LABEL
from dnet.errors import CommandError
from dnet.images import PROBE_IMAGE, ensure_probe, remote_image_id, stream_image
from dnet.plan import desired as d
from dnet.plan.model import (
    ContainerRemove,
    ContainerRun,
    ContainerStart,
    FileCreate,
    FileRemove,
    ImagePull,
    ImageStream,
    ServiceRemove,
    ServiceRun,
    ServiceUpdate,
    VolumeRemove,
)
from dnet.plan.runspec import SpecError, digest
from dnet.tasks import runflags
from dnet.tasks.base import Context, label_args, retrying, task
from dnet.transport.base import quote


@task(ImageStream)
def stream(ctx: Context, c: ImageStream) -> str:
    if ctx.dry_run:
        ctx.run(c.host, f"docker load -q  # stdin: docker save {quote(c.image)} on this machine")
    else:
        stream_image(ctx.transports[c.host], c.image)
    return "streamed from this machine"


@task(ImagePull)
def pull(ctx: Context, c: ImagePull) -> str:
    if c.image == PROBE_IMAGE:  # dnet's own: no registry has it
        if ctx.dry_run:
            ctx.run(c.host, "sh -s  # stdin: the script that assembles dnet's probe image")
            return "assembled"
        return ensure_probe(ctx.transports[c.host])
    ctx.run(c.host, quote("docker", "pull", "-q", c.image), timeout=600)
    return "pulled"


ATTACH_TIMEOUTS = ("attaching to network failed", "could not attach to network", "context deadline exceeded")
RUN_ATTEMPTS = 3
START_WAIT = 30.0  # seconds of `docker start` tries before a new `docker run`


@task(ContainerRun)
def container(ctx: Context, c: ContainerRun) -> str:
    spec = c.spec
    if spec.image_id is None and not ctx.dry_run:
        # pulled or assembled in this apply: its ID is known only now, and the spec hash must hold it, as the
        # next plan computes it, or that plan would recreate the container
        got = remote_image_id(ctx.transports[c.host], spec.image)
        spec = replace(spec, image_id=got) if got else spec
    if c.recreate:
        ctx.run(c.host, quote("docker", "rm", "-f", spec.name) + " >/dev/null")
    flags, after = runflags.container_args(spec, ctx.inv.cluster)
    env_flag, env = runflags.env_stdin(spec)
    args = ["docker", "run", "-d", "--name", spec.name, "--hostname", spec.name, *flags, *env_flag,
            *label_args(d.labels("container", spec, ctx.inv.cluster))]
    nets = spec.networks
    if nets:
        args += ["--network", nets[0]]
        for alias in spec.aliases:
            args += ["--network-alias", alias]
    for p in spec.ports:
        args += ["-p", p]
    args.append(spec.image)
    args += after
    for attempt in range(1, RUN_ATTEMPTS + 1):
        r = ctx.transports[c.host].run(quote(*args) + " >/dev/null", check=False, stdin=env,
                                       secrets=(*ctx.secrets(), *spec.secret_values))
        if r.ok:
            break
        if not any(m in r.stderr.lower() for m in ATTACH_TIMEOUTS):
            r.check()
        # Created but not started: the swarm's attachment for an overlay can time out on a fresh swarm or a slow
        # worker, and each start asks for it anew. A worker that dropped the network meanwhile answers every start
        # with "network ... not found" (seen on emulated VMs): then only a new `docker run` asks again.
        try:
            retrying(ctx, c.host, quote("docker", "start", spec.name) + " >/dev/null", f"start {spec.name}",
                     wait=START_WAIT)
            break
        except CommandError:
            if attempt == RUN_ATTEMPTS:
                raise
            ctx.run(c.host, quote("docker", "rm", "-f", spec.name) + " >/dev/null")
    for net in nets[1:]:
        extra = [a for alias in spec.aliases for a in ("--alias", alias)]
        ctx.run(c.host, quote("docker", "network", "connect", *extra, net, spec.name))
    return f"{c.action}d: {c.detail}"


@task(ContainerStart)
def start(ctx: Context, c: ContainerStart) -> str:
    retrying(ctx, c.host, quote("docker", "start", c.container) + " >/dev/null", f"start {c.container}")
    return "started"


@task(ContainerRemove)
def remove_container(ctx: Context, c: ContainerRemove) -> str:
    ctx.run(c.host, quote("docker", "rm", "-f", c.container) + " >/dev/null")
    return "removed"


@task(ServiceRun)
def service(ctx: Context, c: ServiceRun) -> str:
    spec = c.spec
    if c.recreate:
        r = ctx.run(c.host, quote("docker", "service", "rm", spec.name), check=False)
        if not r.ok and not any(m in r.stderr.lower() for m in ("not found", "no such service")):
            r.check()
    args = ["docker", "service", "create", "--detach", "--name", spec.name,
            *label_args(d.labels("service", spec, ctx.inv.cluster)),
            *label_args({MANAGED_LABEL: "true", CLUSTER_LABEL: ctx.inv.cluster, "dnet.service": spec.name},
                         "--container-label"),
            "--endpoint-mode", spec.endpoint_mode, *runflags.service_args(spec, ctx.inv.cluster)]
    env_flag, env = runflags.env_stdin(spec)
    args += env_flag
    for net in spec.networks:
        args += ["--network", net]
    for p in spec.ports:
        args += ["--publish", p.flag()]
    # A side-loaded image is pinned by ID so that no node reaches for a registry.
    image = spec.image_id or spec.image
    if spec.image_id or spec.image == PROBE_IMAGE:  # dnet's probe is in no registry: each node has its own
        args.append("--no-resolve-image")
    args.append(image)
    args += spec.command or []
    ctx.transports[c.host].run(quote(*args) + " >/dev/null", stdin=env, secrets=(*ctx.secrets(), *spec.secret_values))
    return f"{c.action}d: {c.detail}"


@task(ServiceUpdate)
def update_service(ctx: Context, c: ServiceUpdate) -> str:
    spec = c.spec
    labels = {k: v for k, v in d.labels("service", spec, ctx.inv.cluster).items() if k not in (MANAGED_LABEL,)}
    args = ["docker", "service", "update", "--detach=false", "--quiet",
            *runflags.update_args(spec, c.old, c.fields, ctx.inv.cluster),
            *label_args(labels, "--label-add"), spec.name]
    # waits for the rolling update to finish (or fail by the service's failure_action)
    ctx.transports[c.host].run(quote(*args) + " >/dev/null", secrets=(*ctx.secrets(), *spec.secret_values),
                               timeout=900)
    return f"updated in place: {', '.join(c.fields)}"


@task(FileCreate)
def create_file(ctx: Context, c: FileCreate) -> str:
    f = c.file
    try:
        with open(f.path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise SpecError(f"{c.what} {f.name}: cannot read {f.path}: {exc.strerror or exc}") from None
    if digest(ctx.inv.cluster, f.name, data) != f.digest:
        raise SpecError(f"{c.what} {f.name}: {f.path} changed after the plan was made; run apply again")
    labels = {MANAGED_LABEL: "true", CLUSTER_LABEL: ctx.inv.cluster, d.KIND_LABEL: c.what}
    ctx.run(c.host, quote("docker", c.what, "create", *label_args(labels), f.object, "-") + " >/dev/null",
            stdin=data)
    return f"created {c.what} {f.object}"


@task(FileRemove)
def remove_file(ctx: Context, c: FileRemove) -> str:
    r = ctx.run(c.host, quote("docker", c.what, "rm", c.object) + " >/dev/null", check=False)
    if not r.ok and "not found" not in r.stderr.lower():
        r.check()
    return "removed"


@task(VolumeRemove)
def remove_volume(ctx: Context, c: VolumeRemove) -> str:
    # a removed service's task containers go away a little after the service: the volume is busy until then
    retrying(ctx, c.host, quote("docker", "volume", "rm", c.volume) + " >/dev/null", f"remove volume {c.volume}",
             wait=60)
    return "removed"


@task(ServiceRemove)
def remove_service(ctx: Context, c: ServiceRemove) -> str:
    ctx.run(c.host, quote("docker", "service", "rm", c.service) + " >/dev/null")
    return "removed"
