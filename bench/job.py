"""The job the comparison benchmarks converge, as a dnet inventory for a lab: a swarm, an attachable overlay, a
bridge on every node, a dnsrr service with one replica per node (host-mode port 8080) and a container with a
published port (9090)."""
from __future__ import annotations

from dnet.images import PROBE_IMAGE
from dnet.lab.state import LabState


def inventory(state: LabState, managers: int, edge_host: str) -> str:
    """The job's inventory: the lab's first `managers` nodes are managers, the rest workers."""
    hosts = "\n".join(f"  {n.name}: {{address: {n.address}, roles: [{'manager' if i < managers else 'worker'}]}}"
                      for i, n in enumerate(state.nodes))
    return f"""version: 1
defaults: {{user: root, identity_file: {state.key}, known_hosts: {state.known_hosts}}}
hosts:
{hosts}
swarm: {{advertise_interface: eth0}}
networks:
  appnet: {{driver: overlay, subnet: 10.77.0.0/24, attachable: true}}
  localnet: {{driver: bridge, subnet: 172.30.0.0/24}}
services:
  web:
    image: {PROBE_IMAGE}
    command: [httpd, -f, -p, "80", -h, /www]
    replicas: {len(state.nodes)}
    networks: [appnet]
    endpoint_mode: dnsrr
    ports: [{{published: 8080, target: 80, mode: host}}]
containers:
  edge: {{host: {edge_host}, image: "{PROBE_IMAGE}", command: [httpd, -f, -p, "80", -h, /www],
         networks: [localnet], ports: ["9090:80/tcp"]}}
"""
