#!/bin/bash
# The whole test suite: build, C unit tests, then the pytest integration
# tests against a private libvirtd and real FUSE mounts.  Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d build ]; then
    meson setup build
fi
ninja -C build
meson test -C build --print-errorlogs
# Debian's pytest belongs to /usr/bin/python3, which has the libvirt bindings.
exec /usr/bin/python3 -m pytest -ra tests "$@"
