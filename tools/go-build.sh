#!/usr/bin/env bash
# Build one Go main package offline with Debian's golang-go, in GOPATH mode:
# no module download, no network. Used by tools/build-cnitool.sh and
# shim/build.sh, which decide whether a build is needed.
#
#   tools/go-build.sh IMPORT_PATH OUT SOURCE...
#
# IMPORT_PATH is where the sources go under a throwaway GOPATH, so that
# -trimpath leaves that path in the binary, not the directory it was built in.
# Environment: GOPATH_EXTRA, a second GOPATH entry (Debian's /usr/share/gocode
# for libcni); LDFLAGS, passed to the linker.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
import_path=$1 out=$2
shift 2
command -v go >/dev/null || { echo "go-build: go not found (apt-get install golang-go)" >&2; exit 1; }

mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pkg=$work/gopath/src/$import_path
mkdir -p "$pkg"
cp "$@" "$pkg/"

# A cache that outlives the temp dir keeps rebuilds fast.
cache=${GOCACHE:-$repo/.build/go-cache}
mkdir -p "$cache"

cd "$pkg"
# GO111MODULE=off alone keeps modules out (-mod=off does not exist in GOPATH
# mode); GOFLAGS is emptied so a -mod= from the caller cannot break the build.
GO111MODULE=off GOFLAGS= GOPROXY=off GOTOOLCHAIN=local \
    GOPATH="$work/gopath${GOPATH_EXTRA:+:$GOPATH_EXTRA}" GOCACHE="$cache" CGO_ENABLED=0 \
    go build -trimpath -ldflags "${LDFLAGS:-}" -o "$out.tmp" .
mv -f "$out.tmp" "$out"
