"""verify's --scope, --baseline and --no-operator, without hosts: parsing, comparing, relocating checks."""
from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from dnet.cli.main import cli
from dnet.errors import DnetError
from dnet.verify import from_hosts
from dnet.verify.baseline import compare, load
from dnet.verify.model import Check, Scope, Where
from tests.conftest import EXAMPLE


def check(src: str, dst: str, what: str, result: str, where: Where | None = None, action: list[str] | None = None,
          ) -> Check:
    c = Check(id=f"{src}-{dst}", scope=Scope.ACROSS_HOSTS, src=src, dst=dst, what=what, action=action or ["tcp"],
              where=where or Where("host", src))
    c.result = result
    return c


@pytest.mark.parametrize(("arg", "answer"), [
    ("0", "Invalid value for '--scope': '0': give scope numbers 1-5, comma-separated (e.g. 3,4)"),
    ("3,x", "Invalid value for '--scope': '3,x': give scope numbers 1-5, comma-separated (e.g. 3,4)"),
    (",", "Invalid value for '--scope': ',': give scope numbers 1-5, comma-separated (e.g. 3,4)"),
])
def test_bad_scopes_are_refused_before_any_host_is_touched(arg: str, answer: str) -> None:
    r = CliRunner().invoke(cli, ["verify", "-i", str(EXAMPLE), "--scope", arg])
    assert r.exit_code == 2 and answer in r.output, r.output


def test_scopes_parse_sorted_and_unique() -> None:
    from dnet.cli.verify import parse_scopes

    ctx = click.Context(click.Command("x"))
    assert parse_scopes(ctx, click.Option(["--scope"]), "4,3,4") == [3, 4]


def test_baseline_fails_only_on_new_failures(tmp_path: Path) -> None:
    before = tmp_path / "before.json"
    before.write_text(json.dumps({"checks": [
        {"from": "a", "to": "b", "check": "tcp 80", "ok": False},
        {"from": "a", "to": "c", "check": "tcp 80", "ok": True},
        {"from": "a", "to": "d", "check": "tcp 80", "ok": False}]}))
    now = [check("a", "b", "tcp 80", "timeout"), check("a", "c", "tcp 80", "refused"), check("a", "d", "tcp 80", "ok"),
           check("a", "e", "tcp 80", "timeout")]
    counts = compare(now, load(str(before)))
    assert counts == {"new_failures": 2, "known_failures": 1, "fixed": 1, "not_in_baseline": 1}
    assert [c.tags.get("baseline") for c in now] == ["known", "new", None, "new"]


def test_a_baseline_that_is_not_verify_json_says_how_to_make_one(tmp_path: Path) -> None:
    bad = tmp_path / "b.json"
    bad.write_text('{"changes": []}')
    with pytest.raises(DnetError) as exc:
        load(str(bad))
    assert str(exc.value) == (f"--baseline {bad}: not the output of dnet verify --json (KeyError: 'checks'); write "
                              f"one with dnet verify -i INVENTORY --json > {bad}")
    with pytest.raises(DnetError) as exc:
        load(str(tmp_path / "none.json"))
    assert str(exc.value) == f"--baseline {tmp_path / 'none.json'}: No such file or directory"


def test_no_operator_moves_operator_checks_to_another_host() -> None:
    addrs = {"node1": "10.0.0.1", "node2": "10.0.0.2"}
    published = check("operator", "node1:8080", "tcp 8080", "pending", Where("operator"), ["tcp", "10.0.0.1", "8080"])
    forward = check("operator", "node2:8443", "forward reaches node1:9090", "pending", Where("operator"),
                    ["same", "10.0.0.2", "8443", "10.0.0.1", "9090"])
    inside = check("web.1", "db:5432", "tcp", "pending", Where("ctr", "node1", "abc"))
    from_hosts([published, forward, inside], addrs)
    assert (published.where, published.src, published.tags["via"]) == (Where("host", "node2"), "node2", "host")
    assert forward.where == Where("host", "node1") and forward.action == ["tcp", "10.0.0.2", "8443"]
    assert forward.what == "forward reaches node1:9090 (port only)"
    assert inside.where == Where("ctr", "node1", "abc") and "via" not in inside.tags


def test_exec_takes_one_word_as_shell_and_several_as_quoted_words() -> None:
    from dnet.cli.exec import shell_command

    assert shell_command(("echo a; echo b",)) == "echo a; echo b"
    assert shell_command(("echo", "$(id)", "a b", "'")) == "echo '$(id)' 'a b' ''\"'\"''"


def test_a_verify_result_gives_one_check_by_from_and_to() -> None:
    from dnet.api import VerifyResult

    checks = [{"from": "client", "to": "api:80", "check": "tcp api:80", "ok": True},
              {"from": "web", "to": "https://x.lab/", "check": "dns x.lab", "ok": True},
              {"from": "web", "to": "https://x.lab/", "check": "http https://x.lab/", "ok": False}]
    r = VerifyResult(checks, [], [], {}, 1.0)
    assert r.check("client", "api:80") is checks[0]
    assert r.check("web", "https://x.lab/", "http") is checks[2]
    with pytest.raises(KeyError) as exc:
        r.check("web", "https://x.lab/")
    assert "2 checks from web to https://x.lab/; there are: web -> https://x.lab/ (dns x.lab); " in str(exc.value)
