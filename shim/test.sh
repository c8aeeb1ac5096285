#!/usr/bin/env bash
# Check and test the daemon-mode shim offline (GOPATH mode, no network):
# gofmt, go vet, then the Go tests, which build the shim with shim/build.sh
# and run it against a stand-in daemon. No root needed.
#
#   shim/test.sh [go test flags...]     e.g. shim/test.sh -v -run Fallback
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
command -v go >/dev/null || { echo "shim/test.sh: go not found (apt-get install golang-go)" >&2; exit 1; }

export GO111MODULE=off GOFLAGS= GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0
export GOCACHE=${GOCACHE:-$repo/.build/go-cache}
mkdir -p "$GOCACHE"
cd "$here"

unformatted=$(gofmt -l .)
if [[ -n $unformatted ]]; then
    echo "shim/test.sh: not gofmt-formatted: $unformatted" >&2
    exit 1
fi
go vet .
go test -count=1 "$@" .
