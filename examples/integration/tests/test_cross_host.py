"""Two services on two hosts talk; a partition between the hosts breaks exactly that; healing restores it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

SERVICES = Path(__file__).resolve().parent.parent / "services.yml"


def inventory(lab: Any) -> dict[str, Any]:
    inv = yaml.safe_load(lab.inventory.read_text())
    inv.update(yaml.safe_load(SERVICES.read_text()))
    return inv


def client_reaches_api(lab: Any) -> bool:
    out = lab.run("node3", "docker exec client fetch http://api/ 2>&1 || true")
    return out.strip() == "dnet probe ok"


@pytest.mark.dnet_lab(nodes=3)
def test_talk_partition_heal(dnet_lab: Any, dnet_apply: Any, dnet_verify: Any) -> None:
    inv = inventory(dnet_lab)
    dnet_apply(inv)
    assert dnet_verify(inv)
    assert client_reaches_api(dnet_lab)

    with dnet_lab.fault.partition("node1", "node3"):
        broken = dnet_verify(inv, scopes=[3, 5])
        assert not broken
        assert {c["on"] for c in broken.failed} <= {"node1", "node3"}
        assert any(c["from"] == "client" and c["to"] == "api:80" for c in broken.failed)
        assert not client_reaches_api(dnet_lab)

    assert dnet_verify(inv)
    assert client_reaches_api(dnet_lab)
