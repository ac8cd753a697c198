"""What each inventory key means: the descriptions `dnet schema` and the docs show (a test keeps them complete)."""
from __future__ import annotations

DESCRIPTIONS: dict[str, str] = {
 "AddressPool.base": "CIDR the engine carves local networks from, e.g. 10.210.0.0/16.",
 "AddressPool.size": "Prefix length of each network taken from the pool (1-32), e.g. 24.",
 "DockerEngine.mtu": "Engine MTU (576-9216) written to /etc/docker/daemon.json as `mtu`.",
 "DockerEngine.dns": "DNS server IPs for containers (daemon.json `dns`).",
 "DockerEngine.default_address_pools": "Pools for local (bridge) networks (daemon.json `default-address-pools`).",
 "DockerEngine.daemon": ("Any other daemon.json keys (log-driver, log-opts, live-restore, registry-mirrors, ...), "
                          "merged with the keys above; a key set both ways is an error. Changing them restarts the "
                          "engine as mtu does."),
 "DockerEngine.package": ("Engine package: `docker.io` (the distribution's, the default) or `docker-ce` (Docker's "
                           "own, from its apt repository, which the host must already have)."),
 "DockerEngine.version": ("Version prefix such as `24.0`: apply installs the newest version of the package that "
                          "starts with it (an upgrade or downgrade is a rolling engine restart) and holds the package "
                          "there (apt-mark hold)."),
 "Defaults.user": ("SSH user for hosts that set none (default root; non-root users need `sudo -n`). Like every "
                   "value the inventory states, it beats ~/.ssh/config (whose `Host *` fills only what the "
                   "inventory leaves out); `dnet show` says where each setting came from."),
 "Defaults.port": "SSH port for hosts that set none (default 22); beats ~/.ssh/config.",
 "Defaults.identity_file": ("SSH private key for hosts that set none; must exist when a command connects; beats "
                            "~/.ssh/config."),
 "Defaults.known_hosts": "Extra known_hosts file checked besides ~/.ssh/known_hosts.",
 "Defaults.transport": ("How dnet reaches hosts that set none: `paramiko` (Fabric connections, kept open between "
                        "runs by the connection holder) or `openssh` (the `ssh` command with ControlPersist: "
                        "certificates, FIDO keys, Match blocks, ProxyCommand). Beats DNET_TRANSPORT, which gives "
                        "the default when the inventory says nothing (else paramiko)."),
 "Defaults.docker": "Engine settings every host inherits.",
 "Defaults.image_source": ("How hosts get workload images: `auto` (the default) streams an image from this "
                           "machine's engine when it has the tag for the host's architecture, else the host pulls "
                           "it; `pull` always leaves it to the host's registry; `stream` always streams and fails "
                           "when this machine lacks it or it is built for another architecture."),
 "Host.address": ("IP or DNS name to reach the host; `local` for this machine's engine; optional when "
                  "~/.ssh/config has a Host entry of this name."),
 "Host.port": "SSH port (overrides defaults and ~/.ssh/config).",
 "Host.user": "SSH user (overrides defaults and ~/.ssh/config).",
 "Host.identity_file": "SSH private key (overrides defaults and ~/.ssh/config).",
 "Host.transport": "`paramiko` or `openssh` for this host (overrides defaults and DNET_TRANSPORT).",
 "Host.roles": "[manager] or [worker]; hosts without a role stay out of the swarm.",
 "Host.labels": "Swarm node labels set on this host's node.",
 "Host.advertise_addr": "Swarm advertise and data-path address for this host.",
 "Host.availability": ("Swarm availability of this host's node: active, pause (no new tasks) or drain (tasks "
                       "move away); unset leaves it as it is."),
 "Host.docker": "Engine settings merged over defaults.docker for this host.",
 "Swarm.advertise_interface": "Interface whose address hosts advertise to the swarm (unless advertise_addr is set).",
 "Swarm.default_addr_pool": "CIDRs overlay subnets are taken from (docker swarm init --default-addr-pool).",
 "Swarm.subnet_size": "Prefix length of each overlay subnet taken from the pools (16-29).",
 "Swarm.data_path_port": "UDP port for VXLAN data traffic (default 4789).",
 "Swarm.autolock": "Lock managers' raft keys at rest (docker swarm init --autolock).",
 "Swarm.unlock_key_file": "File on this machine for the unlock key of an autolocked swarm: apply writes it (mode 0600) "
                          "when it initialises the swarm and reads it to unlock managers after an engine restart "
                          "(else DNET_UNLOCK_KEY; without either the key is shown once on stderr and locked managers "
                          "are not restarted).",
 "Network.driver": "`overlay` (swarm-wide) or `bridge` (created on each listed host).",
 "Network.subnet": "CIDR of the network; auto when absent.",
 "Network.gateway": "Gateway: a usable address inside subnet.",
 "Network.attachable": "Overlay only: plain containers may join it.",
 "Network.internal": "No route out of the network (no NAT to the outside).",
 "Network.encrypted": "Overlay only: IPsec-encrypt VXLAN traffic (needs ESP between hosts).",
 "Network.mtu": ("MTU of the network's interfaces (576-9216); for an overlay, at most the underlay's path "
                 "MTU minus 50 (76 encrypted)."),
 "Network.adopt": ("Take over a network of this name that dnet did not make (`dnet import` writes this): "
                   "when it has the declared settings, the next apply records it as the cluster's, nothing "
                   "recreated."),
 "Network.hosts": "Bridge only: host or group names to create it on (default: every host).",
 "RunOptions.image_source": "`auto`, `pull` or `stream` for this workload's image (see defaults.image_source).",
 "RunOptions.env": ("Environment variables, NAME: value. `${VAR}` in a value is VAR from the environment of the "
                    "machine running dnet, read at plan and apply time and never shown (`$$` is a literal $)."),
 "RunOptions.env_file": ("File of NAME=value lines (# comments), relative to the inventory's folder; its values are "
                         "never shown. `env` wins for a name set in both."),
 "RunOptions.mounts": "Volumes, bind mounts and tmpfs: a list of {type, source, target, readonly}.",
 "RunOptions.entrypoint": "Entrypoint instead of the image's, as a list of arguments or a string split like a shell.",
 "RunOptions.user": "User (name or UID[:GID]) the process runs as.",
 "RunOptions.workdir": "Working directory (absolute) of the process.",
 "RunOptions.labels": "Labels on the container (or on the service, for services).",
 "RunOptions.healthcheck": "Health check: {test, interval, timeout, retries, start_period}.",
 "RunOptions.resources": "CPU and memory: {limits: {cpus, memory}, reservations: {cpus, memory}}, memory as 64M/1G.",
 "Mount.type": "`volume` (a named volume, made where needed), `bind` (a host path) or `tmpfs` (memory).",
 "Mount.source": ("Volume name (volume) or absolute host path (bind); none for tmpfs. Volumes are kept by destroy "
                  "unless `--volumes` is given."),
 "Mount.target": "Absolute path inside the container.",
 "Mount.readonly": "Mount read-only.",
 "Healthcheck.test": ("Command that exits 0 when healthy: a string run with the image's shell (CMD-SHELL), or a "
                      "list of arguments (joined and run the same way)."),
 "Healthcheck.interval": "Time between checks, e.g. 30s.",
 "Healthcheck.timeout": "Time one check may take, e.g. 5s.",
 "Healthcheck.retries": "Failures in a row before the container is unhealthy.",
 "Healthcheck.start_period": "Grace time after start during which failures do not count, e.g. 10s.",
 "ResourceSpec.limits": "Most the workload may use: {cpus, memory}.",
 "ResourceSpec.reservations": "What the scheduler keeps free for each task: {cpus, memory} (containers: memory only).",
 "Resources.cpus": "CPUs, e.g. 0.5 or 2.",
 "Resources.memory": "Memory, e.g. 64M or 1G (at least 6M).",
 "Placement.constraints": "Expressions a node must meet, e.g. \"node.labels.zone == a\", \"node.role != manager\".",
 "Placement.preferences": "Spread tasks evenly over a label's values: [{spread: node.labels.zone}].",
 "Spread.spread": "Label to spread over, e.g. node.labels.zone.",
 "UpdatePolicy.parallelism": "Tasks changed at a time (0: all at once; Docker's default 1).",
 "UpdatePolicy.delay": "Wait between batches, e.g. 10s.",
 "UpdatePolicy.order": "`stop-first` (Docker's default) or `start-first` (the new task starts before the old stops).",
 "UpdatePolicy.failure_action": "`pause` (default), `continue` or `rollback` when a task fails to update.",
 "RollbackPolicy.failure_action": "`pause` (default) or `continue` when a task fails to roll back.",
 "FileRef.file": "File on the machine running dnet, relative to the inventory's folder; streamed, never shown.",
 "FileRef.target": "Path in the task's container (secrets: default /run/secrets/NAME; configs: /NAME).",
 "ServicePort.published": "Port published on the hosts.",
 "ServicePort.target": "Port inside the task's container.",
 "ServicePort.protocol": "tcp or udp.",
 "ServicePort.mode": "`ingress` (routing mesh, needs IPVS) or `host` (only on nodes running a task).",
 "Service.image": "Image reference; side-loaded from this machine when its engine has it, else pulled.",
 "Service.command": "Command, as a list of arguments or a string run with sh -c.",
 "Service.adopt": ("Take over a service of this name that dnet did not make (`dnet import` writes this): "
                   "the next apply records it as the cluster's and updates in place what differs; never "
                   "recreated by adoption."),
 "Service.replicas": "Number of tasks (0-10000), for mode: replicated.",
 "Service.mode": "`replicated` (replicas tasks) or `global` (one task on every node that meets the constraints).",
 "Service.placement": "Where tasks may run: {constraints: [...], preferences: [{spread: ...}]}.",
 "Service.update": "How a change rolls out: {parallelism, delay, order, failure_action}.",
 "Service.rollback": "How a rollback rolls out: {parallelism, delay, order, failure_action}.",
 "Service.secrets": ("Swarm secrets, NAME: {file, target}: made from the file (its contents go on stdin, never on a "
                     "command line or in output); a changed file makes a new secret and updates the service."),
 "Service.configs": "Swarm configs, NAME: {file, target}: like secrets, for files that are not secret.",
 "Service.networks": "Overlay networks the tasks join.",
 "Service.endpoint_mode": "`vip` (virtual IP, needs IPVS) or `dnsrr` (DNS round robin).",
 "Service.ports": "Published ports.",
 "ContainerPort.host_ip": "Host address to bind (default all).",
 "ContainerPort.published": "Host port.",
 "ContainerPort.target": "Container port.",
 "ContainerPort.protocol": "tcp or udp.",
 "Container.adopt": ("Take over a container of this name that dnet did not make (`dnet import` writes this): "
                     "when it runs as declared, the next apply records it as the cluster's, not restarted."),
 "Container.host": "Host the container runs on.",
 "Container.image": "Image reference; side-loaded from this machine when its engine has it, else pulled.",
 "Container.command": "Command, as a list of arguments or a string run with sh -c.",
 "Container.networks": "Networks to join (bridges on its host, attachable overlays); default: the engine's bridge.",
 "Container.ports": "Published ports as \"HOST:CONTAINER[/tcp|udp]\" or \"IP:HOST:CONTAINER/proto\".",
 "Container.restart": "Restart policy: no, always, unless-stopped (default) or on-failure[:N].",
 "Container.aliases": "Extra DNS names on every network it joins.",
 "Forward.host": "Host that listens.",
 "Forward.listen": "Port it listens on.",
 "Forward.to": "Target as \"HOST:PORT\" (an inventory host name or an address).",
 "Forward.protocol": "tcp or udp.",
 "Check.from_": ("Container, service or host the check runs from; a stack's service as `STACK_service` or "
                 "`STACK/service`."),
 "Check.to": ("\"NAME:PORT\" (container, service or host; a stack's service as `STACK_service` or "
              "`STACK/service`) or an http(s) URL."),
 "Check.expect": "`reachable` or `unreachable`.",
 "Inventory.version": "Inventory format version; must be 1.",
 "Inventory.cluster": ("This cluster's name (default `default`), written as the label `dnet.cluster` on everything "
                       "dnet makes: apply, pruning and destroy touch only their own cluster's things, so inventories "
                       "that share hosts must each name theirs."),
 "Inventory.defaults": "Settings every host inherits unless it sets its own.",
 "Inventory.hosts": "The servers, by name.",
 "Inventory.groups": "Named lists of hosts, usable wherever a host list is.",
 "Inventory.swarm": "Swarm settings (needs at least one manager).",
 "Inventory.networks": "Overlay and bridge networks, by name.",
 "Inventory.services": "Swarm services, by name.",
 "Inventory.containers": "Plain containers pinned to one host, by name.",
 "Inventory.forwards": "Host-level port forwards across servers (kernel NAT).",
 "Inventory.egress": "http(s) URLs that containers with a way out must reach (verify's scope 4).",
 "Inventory.checks": "Expectations beyond the derived ones (verify's scope 5).",
 "Inventory.stacks": ("Compose files deployed with `docker stack deploy` on a manager, by stack name "
                      "(`shop: shop.yml` or `shop: {file: shop.yml}`); redeployed only when the file or a file it "
                      "names changes, removed by destroy."),
 "Stack.adopt": ("Take over a stack that runs (`dnet import` writes this with the compose file it makes): when "
                 "every service runs as the file says, the next apply records the stack as deployed, nothing "
                 "redeployed."),
 "Stack.file": ("The compose file, relative to the inventory; the env_file, config and secret files it names "
                "(relative to it) go with it."),
}

