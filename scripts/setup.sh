#!/usr/bin/env bash
# Install everything dnet and its tests need on a Debian machine, start dockerd, make .venv.
# Idempotent: re-running it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(docker.io iptables iproute2 iputils-ping debootstrap busybox-static openssh-client python3-venv vagrant git graphviz)
# the tests also open dnet's HTML report in a headless browser, and boot VM labs (--provider qemu, and libvirt:
# Vagrant with vagrant-libvirt, libvirtd, and dnsmasq for its management network's DHCP)
[ "${DNET_SETUP_TESTS:-}" = 1 ] && pkgs+=(chromium qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-clients
                                          vagrant-libvirt dnsmasq-base)
need=()
for pkg in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  echo "setup: starting dockerd"
  if [ -d /run/systemd/system ]; then
    sudo systemctl start docker
  else
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO sh -c 'nohup dockerd >/var/log/dnet-dockerd.log 2>&1 &'
  fi
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "setup: dockerd did not start; see /var/log/dnet-dockerd.log" >&2; exit 1; }
fi

if [ "${DNET_SETUP_TESTS:-}" = 1 ] && ! virsh -q -c qemu:///system uri >/dev/null 2>&1; then
  echo "setup: starting libvirtd"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  if [ -d /run/systemd/system ]; then
    $SUDO systemctl start libvirtd
  fi
  for _ in $(seq 30); do
    virsh -q -c qemu:///system uri >/dev/null 2>&1 && break
    # started again on each try: one that was still shutting down when first asked counts as running, then goes
    [ -d /run/systemd/system ] || $SUDO sh -c 'pgrep -x virtlogd >/dev/null || virtlogd -d
      pgrep -x libvirtd >/dev/null || libvirtd -d'
    sleep 1
  done
  virsh -q -c qemu:///system uri >/dev/null || { echo "setup: libvirtd did not start" >&2; exit 1; }
fi

if [ ! -x .venv/bin/dnet ] || [ setup.cfg -nt .venv/.installed ]; then
  echo "setup: creating .venv and installing dnet"
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e '.[test]'
  touch .venv/.installed
fi
# bytecode for the editable install (pip compiles a wheel's; without it every run compiles dnet's modules again
# when PYTHONDONTWRITEBYTECODE is set)
.venv/bin/python -m compileall -q dnet >/dev/null || true
echo "setup: ready ($(.venv/bin/dnet --version), engine $(docker info --format '{{.ServerVersion}}'))"
