"""dnet: declare, apply and prove Docker networking across many servers."""

__version__ = "0.1.0"
MANAGED_LABEL = "dnet.managed"
CLUSTER_LABEL = "dnet.cluster"  # whose: the inventory's `cluster` name
