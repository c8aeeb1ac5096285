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

mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# GOPATH mode needs the package under a GOPATH's src/; the first GOPATH
# entry holds our copy, the second Debian's libcni. (-mod=off does not
# exist in GOPATH mode: GO111MODULE=off alone keeps modules out, and GOFLAGS
# is emptied so a -mod= from the caller cannot break the build.)
pkg=$work/gopath/src/cni-sysctl/cnitool
mkdir -p "$pkg"
cp "$src" "$pkg/"

# A cache that outlives the temp dir keeps rebuilds fast.
cache=${GOCACHE:-$repo/.build/go-cache}
mkdir -p "$cache"

cd "$pkg"
GO111MODULE=off GOFLAGS= GOPROXY=off GOTOOLCHAIN=local \
    GOPATH="$work/gopath:$debian_gopath" GOCACHE="$cache" CGO_ENABLED=0 \
    go build -trimpath -o "$out.tmp" .
mv -f "$out.tmp" "$out"
