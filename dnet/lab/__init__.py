"""Labs: multi-host rigs made of Docker-in-Docker nodes or Vagrant machines."""
