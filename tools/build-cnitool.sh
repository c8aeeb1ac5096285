#!/usr/bin/env bash
# Build tools/cnitool offline against Debian's libcni sources
# (golang-go + golang-github-appc-cni-dev), in GOPATH mode: no module
# download, no network.
#
#   tools/build-cnitool.sh [OUT]     (default: .build/cnitool at the repo root)
#
# Does nothing when OUT is already newer than the source.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src=$repo/tools/cnitool/main.go
out=${1:-$repo/.build/cnitool}
debian_gopath=/usr/share/gocode

if [[ -x $out && $out -nt $src ]]; then
    exit 0
fi
command -v go >/dev/null || { echo "build-cnitool: go not found (apt-get install golang-go)" >&2; exit 1; }
[[ -d $debian_gopath/src/github.com/containernetworking/cni/libcni ]] || {
    echo "build-cnitool: libcni sources not found (apt-get install golang-github-appc-cni-dev)" >&2
    exit 1
}

GOPATH_EXTRA=$debian_gopath bash "$repo/tools/go-build.sh" cni-sysctl/cnitool "$out" "$src"
