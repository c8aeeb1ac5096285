#!/usr/bin/env bash
# Build the daemon-mode shim (docs/daemon.md) offline with Debian's golang-go,
# in GOPATH mode: standard library only, no module download, no network.
#
#   shim/build.sh [OUT]     (default: .build/cni-sysctl-shim at the repo root)
#
# Does nothing when OUT is already newer than every source.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
out=${1:-$repo/.build/cni-sysctl-shim}

go_sources=()
for f in "$here"/*.go; do
    [[ $f == *_test.go ]] || go_sources+=("$f")
done

fresh=0
if [[ -x $out ]]; then
    fresh=1
    for f in "${go_sources[@]}" "$here/build.sh" "$repo/tools/go-build.sh"; do
        [[ $out -nt $f ]] || fresh=0
    done
fi
((fresh)) && exit 0

# -s -w: no symbol table, no DWARF; a smaller file to map at every call.
LDFLAGS="-s -w" bash "$repo/tools/go-build.sh" cni-sysctl/shim "$out" "${go_sources[@]}"
