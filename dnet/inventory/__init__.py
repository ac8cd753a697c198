"""Inventory: YAML file -> validated, frozen model with file:line:col errors."""
from dnet.inventory.loader import Loaded, load, loads, missing_keys
from dnet.inventory.resolve import HostSpec, hosts
from dnet.inventory.schema import Inventory

__all__ = ["HostSpec", "Inventory", "Loaded", "hosts", "load", "loads", "missing_keys"]
