"""Shared fixtures."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "inventories" / "example.yml"
SHARED_EXAMPLE = ROOT.parent / "shared" / "inventory-example.yml"


@pytest.fixture
def example_text() -> str:
    return EXAMPLE.read_text()
