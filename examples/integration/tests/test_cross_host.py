"""Two services on two hosts talk; a partition between the hosts breaks exactly that; healing restores it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

SERVICES = Path(__file__).resolve().parent.parent / "services.yml"


def inventory(lab: Any) -> dict[str, Any]:
    """The lab's inventory (hosts, and defaults with its SSH key and known_hosts) plus what this project deploys."""
    inv = yaml.safe_load(lab.inventory.read_text())
    inv.update(yaml.safe_load(SERVICES.read_text()))
    return inv


def client_reaches_api(lab: Any) -> bool:
    out = lab.exec("client", "fetch http://api/", check=False)  # inside the container, wherever it runs
    return out.rc == 0 and out.strip() == "dnet probe ok"


@pytest.mark.dnet_lab(nodes=3)
def test_talk_partition_heal(dnet_lab: Any, dnet_apply: Any, dnet_verify: Any) -> None:
    inv = inventory(dnet_lab)
    dnet_apply(inv)
    result = dnet_lab.wait_until(lambda: dnet_verify(inv), timeout=60, what="every check holds")
    assert result.check("client", "api:80")["ok"]
    assert client_reaches_api(dnet_lab)
    assert dnet_lab.run("node3", "docker inspect -f '{{.State.Running}}' client").strip() == "true"

    with dnet_lab.fault.partition("node1", "node3"):  # skipped, with the reason, on --dnet-inventory hosts
        broken = dnet_verify(inv, scopes=[3, 5])
        assert not broken
        assert {c["on"] for c in broken.failed} <= {"node1", "node3"}
        assert not broken.check("client", "api:80")["ok"]
        assert not client_reaches_api(dnet_lab)

    assert dnet_lab.wait_until(lambda: dnet_verify(inv), timeout=60, what="every check holds after healing")
    assert client_reaches_api(dnet_lab)
