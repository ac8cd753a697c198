"""ruamel.yaml round trips for the inventories dnet writes (lab up, import): comments and key order kept."""
from __future__ import annotations

from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedSeq


def roundtrip(width: int = 100) -> YAML:
    y = YAML()
    y.width = width
    y.indent(mapping=2, sequence=4, offset=2)
    y.preserve_quotes = True
    return y


def flow(items: list[Any]) -> CommentedSeq:
    """A list written on one line ([a, b])."""
    seq = CommentedSeq(items)
    seq.fa.set_flow_style()
    return seq
