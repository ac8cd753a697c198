"""Present verify results: tables by scope, a sources x destinations matrix, JSON and JUnit."""
from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET

from rich.console import Console
from rich.text import Text

from dnet.output import row, say, show, styled, table
from dnet.verify.findings import Finding
from dnet.verify.model import SCOPES, Check


def tables(out: Console, checks: list[Check]) -> None:
    """One table per scope."""
    for scope, title in SCOPES.items():
        cs = [c for c in checks if c.scope == scope]
        if not cs:
            continue
        t = table(out, f"{scope}. {title}", "", "from", "to", "check", "expect", "result", "detail / hint")
        for c in cs:
            mark = styled("ok", "green") if c.ok else styled("FAIL", "red")
            if not c.ok and c.tags.get("baseline") == "known":  # verify --baseline: it failed there too
                mark = styled("known", "yellow")
            detail = c.detail if c.ok else f"{c.detail} -> {c.tags.get('hint', '')}"
            row(t, mark, starred(c.src, c), starred(c.dst, c), c.what, "reach" if c.expect else "must not", c.result,
                detail[:160])
        show(out, t)


def starred(name: str, c: Check) -> str:
    """A name with * when verify --discover found it (not declared in the inventory)."""
    found = c.tags.get("discovered", "").split(",")
    return f"{name}*" if name in found or name.split(":")[0] in found else name


def destination(c: Check) -> str:
    """The matrix column of a check: its destination without the port."""
    return c.dst.split(":")[0] if c.scope in (3, 5) and ":" in c.dst and not c.dst.startswith("http") else c.dst


def grid(checks: list[Check]) -> tuple[list[str], list[str], dict[tuple[str, str], list[Check]]]:
    """Rows (sources, the operator last), columns (destinations) and the checks of each cell."""
    cells: dict[tuple[str, str], list[Check]] = {}
    for c in checks:
        cells.setdefault((c.src, destination(c)), []).append(c)
    srcs = sorted({c.src for c in checks}, key=lambda s: (s == "operator", s))
    return srcs, sorted({destination(c) for c in checks}), cells


def matrix(out: Console, checks: list[Check]) -> None:
    """Sources x destinations: ok when every check of the pair holds, FAIL otherwise, counts inside."""
    srcs, dsts, grouped = grid(checks)
    found = {n for c in checks for n in c.tags.get("discovered", "").split(",") if n}  # verify --discover's
    t = table(out, "connectivity matrix (rows: from, columns: to; ok/total)", "from \\ to",
              *(f"{d}*" if d in found else d for d in dsts))
    for s in srcs:
        cells: list[str | Text] = [f"{s}*" if s in found else s]
        for d in dsts:
            cs = grouped.get((s, d), [])
            if not cs:
                cells.append(styled("·" if out.is_terminal else "-", "dim"))
                continue
            good = sum(c.ok for c in cs)
            cells.append(styled(f"{good}/{len(cs)}", "green" if good == len(cs) else "red"))
        row(t, *cells)
    show(out, t)


def findings(out: Console, found: list[Finding], checks: list[Check]) -> None:
    """Print the findings first: what is broken, where, how dnet knows, what to do."""
    by_id = {c.id: c for c in checks}
    for n, f in enumerate(found, 1):
        say(out, styled(f"finding {n}: ", "bold red"), styled(f.cause, "bold"))
        for e in f.evidence:
            say(out, "  evidence: ", e)
        for r in f.ruled_out:
            say(out, "  ruled out: ", r)
        say(out, "  fix: ", f.fix)
        names = [f"{by_id[i].src} -> {by_id[i].dst}" for i in f.checks]
        say(out, f"  explains {len(names)} failed checks: ", ", ".join(names[:6]) + (", ..." if len(names) > 6 else ""))


def as_json(checks: list[Check], hints: list[str], seconds: float, found: list[Finding] | None = None
            ) -> dict[str, Any]:
    """The JSON form of a verify run (the CLI adds format_version and unreachable hosts)."""
    passed = sum(c.ok for c in checks)
    by_id = {c.id: c for c in checks}
    return {"findings": [f.public(by_id) for f in found or []], "checks": [c.public() for c in checks],
            "hints": hints,
            "summary": {"passed": passed, "failed": len(checks) - passed, "seconds": round(seconds, 2)}}


def junit(checks: list[Check], path: str, seconds: float) -> None:
    """Write a JUnit XML report: one testsuite per scope."""
    root = ET.Element("testsuites", name="dnet verify", tests=str(len(checks)),
                      failures=str(sum(not c.ok for c in checks)), time=f"{seconds:.2f}")
    for scope, title in SCOPES.items():
        cs = [c for c in checks if c.scope == scope]
        if not cs:
            continue
        suite = ET.SubElement(root, "testsuite", name=title, tests=str(len(cs)),
                              failures=str(sum(not c.ok for c in cs)))
        for c in cs:
            case = ET.SubElement(suite, "testcase", classname=title.replace(" ", "_"),
                                 name=f"{c.src} -> {c.dst}: {c.what}")
            if not c.ok:
                fail = ET.SubElement(case, "failure", message=f"{c.result}: {c.tags.get('hint', '')}")
                fail.text = c.detail
    ET.ElementTree(root).write(path, encoding="unicode", xml_declaration=True)
