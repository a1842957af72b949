#!/bin/bash
# Install, with apt, everything poolfs needs to build, run its tests and its
# quickstart on Debian 12.  Idempotent; safe to run on a machine that has
# everything already.
set -euo pipefail

pkgs=(
    gcc meson ninja-build pkg-config
    libvirt-dev libfuse3-dev libxml2-dev
    libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
    fuse3 qemu-utils qemu-system-x86 util-linux iproute2 rsync
    libgnutls28-dev gnutls-bin python3-pytest python3-libvirt xfsprogs
)

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# libvirtd's QEMU driver refuses to start unless the user and group it was
# built for exist; libvirt-daemon-system would create them, but it also
# starts the system daemon, which poolfs's tests must never touch.
getent group kvm >/dev/null || groupadd --system kvm
getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
getent passwd libvirt-qemu >/dev/null ||
    useradd --system --no-create-home --home-dir /var/lib/libvirt \
            --shell /usr/sbin/nologin -g libvirt-qemu -G kvm libvirt-qemu
