"""Runbooks: YAML files of ordered steps (built-in actions, shell commands, Python functions) run with `dnet run`."""
from dnet.runbook.context import RunContext, RunError
from dnet.runbook.load import LoadedRunbook, bind, find, load, parse_params
from dnet.runbook.run import RunResult, execute

__all__ = ["LoadedRunbook", "RunContext", "RunError", "RunResult", "bind", "execute", "find", "load",
           "parse_params"]
