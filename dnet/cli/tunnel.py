"""`dnet tunnel`: an SSH local forward to a host's port, or to a container's or task's port through its host."""
from __future__ import annotations

import signal
import socket
import sys
import threading
import uuid
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

import click

from dnet.cli.common import accept_option, inventory_option, load_inventory, log_to, out, quiet_option, say
from dnet.errors import DnetError
from dnet.images import PROBE_IMAGE, ensure_probe
from dnet.session import open_session
from dnet.transport.base import quote
from dnet.transport.direct import DirectOnDemand
from dnet.transport.ssh import SSHTransport
from dnet.tunnel import Stream, resolve, serve

if TYPE_CHECKING:
    import paramiko


class Probe:
    """A channel into a probe container that removes the container when closed (a closed channel alone may leave
    `docker run` going on the host)."""

    def __init__(self, chan: paramiko.Channel, remove: Callable[[], object]) -> None:
        self.chan, self.remove = chan, remove

    def recv(self, size: int) -> bytes:
        return bytes(self.chan.recv(size))

    def sendall(self, data: bytes) -> None:
        self.chan.sendall(data)

    def fileno(self) -> int:
        return int(self.chan.fileno())

    def close(self) -> None:
        self.chan.close()
        self.remove()


@click.command("tunnel")
@inventory_option
@click.argument("target", metavar="HOST:PORT|CONTAINER:PORT|SERVICE:PORT")
@click.option("--local", "local_port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Local port on 127.0.0.1 (0: any free one).")
@accept_option
@quiet_option
def command(inventory: str, target: str, local_port: int, accept_new_host_keys: bool, quiet: bool) -> None:
    """Forward 127.0.0.1:PORT here to TARGET over SSH, published or not; hold until Ctrl-C."""
    loaded = load_inventory(inventory, quiet, connect=True)
    with open_session(loaded, accept_new_host_keys, log_to(True)) as s:
        t = resolve(loaded.model, s.facts, target)
        if t.host not in s.transports:
            raise DnetError(f"{t.host} is unreachable: {s.host_errors.get(t.host, 'not connected')}")
        held = s.transports[t.host]  # no -v wrapper here: the SSH transport itself
        # channels need a paramiko connection of this process's own (the holder's and ssh's carry none)
        transport = held.direct() if isinstance(held, DirectOnDemand) else held

        if t.container:
            ensure_probe(transport)
        run_id = uuid.uuid4().hex[:12]

        def into(name: str) -> str:
            return quote("docker", "run", "--rm", "-i", "--name", name, "--label", "dnet.managed=true", "--label",
                         f"dnet.tunnel={run_id}", "--network", f"container:{t.container}", "--entrypoint", "nc",
                         PROBE_IMAGE, "127.0.0.1", str(t.port))

        def open_channel(dest: tuple[str, int], peer: tuple[str, int]) -> Stream:
            if not isinstance(transport, SSHTransport):
                if t.container:
                    raise DnetError("tunnels into containers need an SSH host (address: local has no tunnel)")
                return socket.create_connection(dest, timeout=10)
            ssh = transport.conn.client.get_transport()
            if ssh is None:
                raise DnetError(f"{t.host}: the SSH connection was lost")
            if t.container:
                name = f"dnet-tunnel-{run_id}-{uuid.uuid4().hex[:8]}"
                session = ssh.open_session()
                session.exec_command(transport.prefix + "sh -c " + quote(into(name)))
                chan: Stream = Probe(session, lambda: transport.run(quote("docker", "rm", "-f", name) + " >/dev/null "
                                                                    "2>&1", check=False, timeout=30))
            else:
                chan = ssh.open_channel("direct-tcpip", dest, peer)
            return chan

        listener = socket.create_server(("127.0.0.1", local_port))
        port = listener.getsockname()[1]
        stop = threading.Event()

        def end(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, end)  # both end the tunnel the same calm way
        signal.signal(signal.SIGINT, end)
        where = f"{t.address}:{t.port} seen from {t.host}" if not t.container else f"inside its namespace on {t.host}"
        say(out, f"127.0.0.1:{port} -> {t.what} ({where}); Ctrl-C ends it")
        sys.stdout.flush()
        try:
            serve(listener, open_channel, (t.address, t.port), stop, log_to(quiet))
        except KeyboardInterrupt:
            stop.set()
        finally:
            listener.close()
            if t.container:  # whatever a connection left running (its channel cut mid-way)
                transport.run(f"docker ps -aq --filter label=dnet.tunnel={run_id} | xargs -r docker rm -f "
                              ">/dev/null 2>&1", check=False, timeout=60)
    if not quiet:
        say(out, "tunnel closed")
