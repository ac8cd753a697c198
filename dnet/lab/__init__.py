"""Labs: multi-host rigs made of Docker-in-Docker nodes, Vagrant machines or QEMU VMs."""
