"""diff(desired, actual) -> an ordered Plan; nothing runs here."""
from dnet.plan.diff import diff
from dnet.plan.model import Change, Plan

__all__ = ["Change", "Plan", "diff"]
