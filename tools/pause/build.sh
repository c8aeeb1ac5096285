#!/usr/bin/env bash
# Build the pod sandbox ("pause") image of the CRI tests, offline: tools/pause/pause.c compiled
# with `gcc -static`, packed as an OCI image layout tar for `ctr images import`.
#
#   tools/pause/build.sh [OUT_DIR] [NAME]
#
# OUT_DIR (default .build/pause) receives `pause` and `pause.tar`; NAME (default
# localhost/cni-sysctl/pause:1) is the reference the image is imported under. Does nothing
# when pause.tar is newer than the sources.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-$here/../../.build/pause}
name=${2:-localhost/cni-sysctl/pause:1}

if [[ -f $out/pause.tar && $out/pause.tar -nt $here/pause.c && $out/pause.tar -nt $here/oci_layout.py \
    && $out/pause.tar -nt $here/build.sh ]]; then
    exit 0
fi
command -v gcc >/dev/null || { echo "pause/build.sh: gcc not found (apt-get install gcc libc6-dev)" >&2; exit 1; }

mkdir -p "$out"
gcc -static -Os -s -Wall -Wextra -Werror -o "$out/pause.tmp" "$here/pause.c"
mv -f "$out/pause.tmp" "$out/pause"
python3 "$here/oci_layout.py" "$out/pause" "$name" "$out/pause.tar"
