"""Idempotent operations that turn a Change into commands on hosts, one task per change class."""
from dnet.tasks import adopt, engine, forward, network, stack, swarm, workload
from dnet.tasks.base import Context, handler, registered, task

__all__ = ["Context", "adopt", "engine", "forward", "handler", "network", "registered", "stack", "swarm", "task",
           "workload"]
