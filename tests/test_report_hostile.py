"""The graph and the HTML report built from hostile names (a container's task labels can be set by any docker user):
DOT stays DOT, the SVG links nowhere, and in headless Chromium no script runs and nothing is fetched."""
from __future__ import annotations

import dataclasses
import os
import shutil
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import paramiko
import pytest

from dnet.errors import DnetError
from dnet.graph import dot, render, run_dot, safe_svg
from dnet.htmlreport import CSP, page
from dnet.inventory import hosts, loads
from dnet.verify import Report
from tests.conftest import EXAMPLE
from tests.test_facts_plan import facts

# Two crafted names: the first ends in a backslash (it would escape the closing quote of a DOT string), the
# second then closes that string and adds a link and a label of its own.
HOSTILE = ["web.evil\\", 'web.x"]; n0 [URL="javascript:alert(1)", label="click me"]; x [label="',
           "web.<script>alert(2)</script>", "web.\x1b]0;title\x07"]


# Chromium with nothing of its own on the network (no updates, sync, first-run or background fetches): the pages
# below are online, and the only server they may reach is this test's on 127.0.0.1.
QUIET = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-domain-reliability",
         "--no-pings", "--dns-prefetch-disable", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


def hostile_dot() -> str:
    inv = loads(EXAMPLE.read_text()).model
    fs = facts("applied")
    real = next(c for c in fs["node2"].containers if c.service == "web")
    for n, name in enumerate(HOSTILE):
        fs["node2"].containers.append(dataclasses.replace(
            real, id=f"{n:064d}", name=f"fake{n}",
            labels={**real.labels, "com.docker.swarm.task.id": f"fake{n}", "com.docker.swarm.task.name": name}))
    return dot(inv, hosts(inv, paramiko.SSHConfig()), fs)


def need_dot() -> None:
    if not shutil.which("dot"):
        if os.environ.get("CI") == "true":
            pytest.fail("graphviz is not installed (scripts/setup.sh installs it)")
        pytest.skip("graphviz is not installed here")


def test_hostile_names_stay_inside_their_labels() -> None:
    need_dot()
    text = hostile_dot()
    for line in text.splitlines():  # every line: IDs dnet made, and quoted strings whose quotes all close
        body = line.replace("\\\\", "").replace('\\"', "")
        assert body.count('"') % 2 == 0, line
    svg = run_dot(text, "svg").decode()  # dot reads it (a name ending in a backslash made it fail)
    assert "href" not in svg and "<a " not in svg  # the injected URL is only text inside a label
    assert "web.evil\\" in svg and "\\x1b]0;title\\x07" in svg  # shown as text


def test_svg_keeps_no_link_script_or_handler() -> None:
    svg = ('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
           'onload="alert(1)"><script>alert(2)</script><a xlink:href="javascript:alert(3)"><text onclick="x()">'
           'node1</text></a><a href="https://example.invalid/"><g><text>node2</text></g></a>'
           '<foreignObject><iframe src="x"/></foreignObject><image href="http://example.invalid/p.png"/></svg>')
    clean = safe_svg(svg)
    for bad in ("onload", "onclick", "<script", "javascript:", "href", "foreignObject", "iframe", "<image", "<a"):
        assert bad not in clean, bad
    assert "node1" in clean and "node2" in clean


def test_a_dot_that_runs_too_long_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "dot"
    fake.write_text("#!/bin/sh\nsleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    with pytest.raises(DnetError, match=r"Graphviz's dot took longer than 1s to draw the topology; write a \.dot"):
        run_dot("digraph {}", "svg", timeout=1)
    fake.write_text("#!/bin/sh\necho 'not svg <'\n")
    html = page("t", "digraph {}", Report([], [], [], 0), [], {})  # the report says so and shows the DOT instead
    assert "<p>(the topology could not be drawn: Graphviz&#x27;s dot wrote no readable SVG" in html
    assert "<pre>digraph {}</pre>" in html


def test_graph_command_writes_a_safe_svg(tmp_path: Path) -> None:
    need_dot()
    out = tmp_path / "topo.svg"
    render(hostile_dot(), str(out))
    text = out.read_text()
    assert text.startswith("<svg") and "href" not in text and "<a " not in text


def test_the_report_runs_no_script_and_fetches_nothing_in_chromium(tmp_path: Path) -> None:
    need_dot()
    html = page("report <b>of</b> evil", hostile_dot(), Report([], [], [], 0.0), [], {"gone": "<img src=x "
                                                                                     "onerror=alert(4)>"})
    assert f'content="{CSP}"' in html and "<script" not in html.replace("&lt;script", "")
    # were escaping ever bypassed, the page's policy still blocks it: plant script, handlers and a fetch by hand
    hits: list[str] = []

    class Counter(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Counter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    planted = html.replace("</body>", f"<script>document.title='ran'</script><img src='data:,' "
                                      f"onerror=\"document.title='ran'\"><a id=js href=\"javascript:document.title="
                                      f"'ran'\">js</a><img src='{url}/img.png'><link rel=stylesheet "
                                      f"href='{url}/s.css'><script src='{url}/s.js'></script></body>")
    (tmp_path / "report.html").write_text(planted)
    chromium = shutil.which("chromium")
    if not chromium:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (scripts/setup.sh installs it)")
        pytest.skip("chromium is not installed here")
    from playwright.sync_api import Dialog, sync_playwright

    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=QUIET)
            try:
                pg = browser.new_context().new_page()  # online: only the page's own policy stands in the way
                dialogs: list[str] = []

                def seen(d: Dialog) -> None:
                    dialogs.append(d.message)
                    d.dismiss()

                pg.on("dialog", seen)
                pg.goto((tmp_path / "report.html").as_uri())
                pg.wait_for_timeout(300)
                for link in pg.locator("a").all():
                    link.click(force=True, no_wait_after=True)
                for el in pg.locator("svg *").all()[:50]:
                    el.dispatch_event("click")
                pg.wait_for_timeout(300)
                assert pg.title() == "report <b>of</b> evil" and dialogs == []
            finally:
                browser.close()
        assert hits == []  # nothing was fetched: no image, stylesheet or script
        control = tmp_path / "control.html"  # the same planted page without the policy does fetch (the test works)
        control.write_text(planted.replace("Content-Security-Policy", "X-None"))
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=QUIET)
            try:
                pg = browser.new_context().new_page()
                pg.goto(control.as_uri())
                pg.wait_for_timeout(500)
                assert pg.title() == "ran" and hits
            finally:
                browser.close()
    finally:
        server.shutdown()


@pytest.mark.parametrize("kind", ["fresh", "applied", "none"])
def test_every_node_an_edge_uses_is_drawn_with_its_own_label(kind: str) -> None:
    """With IDs dnet makes, a node Graphviz would create on its own would show as a bare `n12`."""
    import re

    inv = loads(EXAMPLE.read_text()).model
    text = dot(inv, hosts(inv, paramiko.SSHConfig()), facts(kind) if kind != "none" else {})
    declared = set(re.findall(r"^\s*(n\d+) \[", text, re.M))
    used = {x for pair in re.findall(r"^\s*(n\d+) -> (n\d+)", text, re.M) for x in pair}
    assert used and used <= declared, sorted(used - declared)
