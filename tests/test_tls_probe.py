"""The probe's https verb against real TLS servers on 127.0.0.1: trusted, untrusted, wrong name, not TLS, closed."""
from __future__ import annotations

import http.server
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dnet.images import PROBE_IMAGE, ensure_probe
from dnet.lab import tls
from dnet.transport.local import LocalTransport
from dnet.verify import probe
from dnet.verify.model import Check, Scope, Where

pytestmark = pytest.mark.lab


def _pem(tmp: Path, name: str, pair: tls.Pair) -> tuple[str, str]:
    c, k = tmp / f"{name}.crt", tmp / f"{name}.key"
    for path, text in zip((c, k), tls.pem(pair), strict=True):
        path.write_text(text)
    return str(c), str(k)


def _serve(ctx: ssl.SSLContext | None) -> int:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    if ctx:
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return int(srv.server_address[1])


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, int]]]:
    tmp = tmp_path_factory.mktemp("tls")
    ca = tls.cert("dnet test CA", [], None, 1)
    (tmp / "bundle.crt").write_text(tls.pem(ca)[0])
    ports: dict[str, int] = {}
    for name, pair in [("trusted", tls.cert("localhost", ["localhost", "127.0.0.1"], ca, 1)),
                       ("untrusted", tls.cert("localhost", ["localhost", "127.0.0.1"], None, 1)),  # self-signed
                       ("wrongname", tls.cert("elsewhere", ["elsewhere.example"], ca, 1))]:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*_pem(tmp, name, pair))
        ports[name] = _serve(ctx)
    ports["plain"] = _serve(None)
    with socket.socket() as s:  # a closed port: bound, never listening
        s.bind(("127.0.0.1", 0))
        ports["closed"] = s.getsockname()[1]
    ensure_probe(LocalTransport("local"))
    yield tmp, ports


def _run(tmp: Path, url: str, *extra: str) -> tuple[str, str]:
    c = Check(id="c1", scope=Scope.OUT, src="here", dst=url, what="https", action=["http", url, *extra],
              where=Where("host", "local"))
    out = subprocess.run(["docker", "run", "--rm", "--network", "host", "-v",
                          f"{tmp / 'bundle.crt'}:/etc/ssl/certs/ca-certificates.crt:ro", "--entrypoint", "sh",
                          PROBE_IMAGE, "-c", probe.script([c])], capture_output=True, text=True, timeout=60).stdout
    probe.parse(out, [c])
    return c.result, c.detail


def test_a_trusted_certificate_passes_by_name_and_by_address(servers: tuple[Path, dict[str, int]]) -> None:
    tmp, ports = servers
    assert _run(tmp, f"https://localhost:{ports['trusted']}/")[0] == "ok"
    result, detail = _run(tmp, f"https://localhost:{ports['trusted']}/", "127.0.0.1")
    assert (result, detail.split()[0]) == ("ok", "HTTP/1.0")


def test_an_untrusted_certificate_is_its_own_result(servers: tuple[Path, dict[str, int]]) -> None:
    tmp, ports = servers
    result, detail = _run(tmp, f"https://localhost:{ports['untrusted']}/")
    assert result == "tls" and detail.startswith("certificate not trusted:"), detail


def test_a_name_the_certificate_does_not_hold_is_not_trusted(servers: tuple[Path, dict[str, int]]) -> None:
    tmp, ports = servers
    result, detail = _run(tmp, f"https://localhost:{ports['wrongname']}/")
    assert result == "tls" and detail.startswith("certificate not trusted:"), detail


def test_a_port_that_does_not_speak_tls_fails_the_handshake(servers: tuple[Path, dict[str, int]]) -> None:
    tmp, ports = servers
    result, detail = _run(tmp, f"https://localhost:{ports['plain']}/")
    assert result == "tls" and detail.startswith("handshake failed:"), detail


def test_a_closed_port_is_refused_not_tls(servers: tuple[Path, dict[str, int]]) -> None:
    tmp, ports = servers
    assert _run(tmp, f"https://127.0.0.1:{ports['closed']}/")[0] == "refused"


def test_the_probe_image_carries_no_managed_label(servers: tuple[Path, dict[str, int]]) -> None:
    """Containers inherit an image's labels: a container someone starts from the probe must not pass for dnet's."""
    labels = subprocess.run(["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", PROBE_IMAGE],
                            capture_output=True, text=True, check=True).stdout
    assert "dnet.recipe" in labels and "dnet.managed" not in labels
