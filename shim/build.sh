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
    for f in "${go_sources[@]}" "$here/build.sh"; do
        [[ $out -nt $f ]] || fresh=0
    done
fi
((fresh)) && exit 0

command -v go >/dev/null || { echo "shim/build.sh: go not found (apt-get install golang-go)" >&2; exit 1; }

mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A fixed import path under a throwaway GOPATH, so that -trimpath leaves
# cni-sysctl/shim in the binary, not the directory it was built in. GOFLAGS
# is emptied so a -mod= from the caller cannot break a GOPATH-mode build.
pkg=$work/gopath/src/cni-sysctl/shim
mkdir -p "$pkg"
cp "${go_sources[@]}" "$pkg/"

# A cache that outlives the temp dir keeps rebuilds fast.
cache=${GOCACHE:-$repo/.build/go-cache}
mkdir -p "$cache"

cd "$pkg"
# -s -w: no symbol table, no DWARF; a smaller file to map at every call.
GO111MODULE=off GOFLAGS= GOPROXY=off GOTOOLCHAIN=local \
    GOPATH="$work/gopath" GOCACHE="$cache" CGO_ENABLED=0 \
    go build -trimpath -ldflags "-s -w" -o "$out.tmp" .
mv -f "$out.tmp" "$out"
