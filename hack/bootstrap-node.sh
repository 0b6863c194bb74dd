#!/usr/bin/env bash
# Installs the Debian packages a real local node needs, only those missing, and says
# which. Needs root (the node itself needs root: network namespaces, cgroups, mounts).
set -euo pipefail

PACKAGES=(containerd runc containernetworking-plugins nftables iptables conntrack socat
          busybox-static debootstrap buildah)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "bootstrap-node: missing Debian packages: ${missing[*]}; run this as root" >&2
  exit 1
fi
echo "bootstrap-node: installing ${missing[*]} (apt-get update first)" >&2
start=$(date +%s)
# One apt at a time on the machine: a second caller waits on apt's own lock.
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >&2 </dev/null
echo "bootstrap-node: installed ${missing[*]} in $(( $(date +%s) - start ))s" >&2
