#!/usr/bin/env bash
# Build the cni-sysctl node image (deploy/image/Containerfile) with podman, tagged with the
# name in deploy/image/NAME (the name deploy/kubernetes/cni-sysctl.yaml runs).
#
#   deploy/image/build.sh              base: Debian 12 minbase + python3, made here with mmdebstrap
#   BASE=IMAGE deploy/image/build.sh   base: IMAGE (Python 3.11 with venv), e.g.
#                                      docker.io/library/python:3.11-slim-bookworm
#
# A RUN step of the build has no network, so everything it installs is made here first:
# - the base rootfs: `mmdebstrap --variant=minbase` (it reaches Debian's mirrors), cached as
#   .build/image/base-KEY.tar, KEY a hash of the mmdebstrap command; imported once per podman
#   store as localhost/cni-sysctl-base:KEY;
# - the wheels: the project's (`pip wheel .`, every build) and its dependencies' at the versions
#   installed in PYTHON's environment (default .venv, where the tests run them), from PyPI,
#   cached in .build/image/wheels-KEY/, KEY a hash of those pins and the Python version;
# - the shim: shim/build.sh (offline, Debian's golang-go).
# PODMAN (default podman) is the podman command to use (the tests point it at a store of their
# own). Prints the image's name on the last line.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
image=$(<"$here/NAME")
podman=${PODMAN:-podman}
python=${PYTHON:-$repo/.venv/bin/python}
cache=$repo/.build/image
mkdir -p "$cache"

say() { printf 'build.sh: %s\n' "$*" >&2; }
key() { sha256sum | cut -c1-16; }

# --- the base -------------------------------------------------------------------------------
base=${BASE:-}
if [[ -z $base ]]; then
    debstrap=(
        mmdebstrap --quiet --variant=minbase --include=python3,python3-venv --format=tar
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*'
        --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/doc/*'
        --dpkgopt='path-include=/usr/share/doc/*/copyright'
        bookworm
    )
    base_key=$(printf '%s\n' "${debstrap[@]}" | key)
    tar=$cache/base-$base_key.tar
    if [[ ! -s $tar ]]; then
        command -v mmdebstrap >/dev/null || { say "mmdebstrap not found (apt-get install mmdebstrap)"; exit 1; }
        say "making the base rootfs with mmdebstrap (cached as $tar)"
        "${debstrap[@]}" "$tar.part"
        mv -f "$tar.part" "$tar"
    fi
    base=localhost/cni-sysctl-base:$base_key
    if ! $podman image exists "$base"; then
        say "importing $tar as $base"
        $podman import --quiet "$tar" "$base" >/dev/null
    fi
fi

# --- the wheels -----------------------------------------------------------------------------
pins=$("$python" - <<'PY'
import sys
from importlib.metadata import version
print(f"python {sys.version_info[0]}.{sys.version_info[1]}")
for name in ("pyroute2", "PyYAML"):
    print(f"{name}=={version(name)}")
PY
)
deps=$cache/wheels-$(printf '%s\n' "$pins" | key)
if [[ ! -d $deps ]]; then
    say "fetching the dependencies' wheels from PyPI: $(echo "$pins" | tail -n +2 | tr '\n' ' ')"
    rm -rf "$deps.part"
    # shellcheck disable=SC2046 # one pin per line, no spaces in them
    "$python" -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$deps.part" \
        $(echo "$pins" | tail -n +2)
    mv "$deps.part" "$deps"
fi

context=$(mktemp -d "${TMPDIR:-/tmp}/cni-sysctl-image.XXXXXX")
trap 'rm -rf "$context"' EXIT
mkdir "$context/wheels"
cp "$deps"/*.whl "$context/wheels/"
# The project's wheel, from a copy of the sources (pip would leave build/ in the checkout).
mkdir "$context/src"
cp -r "$repo/setup.cfg" "$repo/pyproject.toml" "$repo/README.md" "$repo/LICENSE" "$repo/cni_sysctl" "$context/src/"
"$python" -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation \
    -w "$context/wheels" "$context/src"
rm -rf "$context/src"

# --- the shim, the entrypoint ---------------------------------------------------------------
bash "$repo/shim/build.sh" "$repo/.build/cni-sysctl-shim"
cp "$repo/.build/cni-sysctl-shim" "$context/cni-sysctl-shim"
cp "$here/entrypoint.py" "$here/Containerfile" "$context/"

# --- the image ------------------------------------------------------------------------------
version=$("$python" -c 'import sys; sys.path.insert(0, sys.argv[1]); import cni_sysctl; print(cni_sysctl.__version__)' "$repo")
say "building $image from $base"
$podman build --quiet --network=none --pull=missing --layers=false \
    --build-arg BASE="$base" --build-arg VERSION="$version" \
    --tag "$image" --file "$context/Containerfile" "$context" >/dev/null
echo "$image"
