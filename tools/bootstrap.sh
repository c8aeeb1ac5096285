#!/usr/bin/env bash
# Prepare a fresh Debian 12 machine (as root) to run cni-sysctl's demo and
# tests: Debian packages (mmdebstrap and podman build the node image:
# deploy/image/build.sh), a virtualenv with the package and its test extras
# at .venv, cnitool at .build/cnitool, the daemon-mode shim at
# .build/cni-sysctl-shim, and a venv with the oldest pyroute2 allowed. Safe
# to run again: each step is skipped when already done. Details go to
# .build/bootstrap.log.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=$repo/.venv
log=$repo/.build/bootstrap.log
packages=(
    containernetworking-plugins golang-go golang-github-appc-cni-dev
    iproute2 procps python3-venv radvd podman runc busybox-static
    containerd gcc libc6-dev mmdebstrap
)
export DEBIAN_FRONTEND=noninteractive

mkdir -p "$repo/.build"
: >"$log"

step() { printf 'bootstrap: %s\n' "$*"; printf '\n== %s\n' "$*" >>"$log"; }
# Run a command with its output in the log; on failure show the log's end.
run() {
    if ! "$@" >>"$log" 2>&1; then
        echo "bootstrap: failed: $*   (last lines of $log:)" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
}
installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]; }

missing=()
for p in "${packages[@]}"; do
    installed "$p" || missing+=("$p")
done
if ((${#missing[@]})); then
    if ((EUID != 0)); then
        echo "bootstrap: run as root to install: ${missing[*]}" >&2
        exit 1
    fi
    step "apt-get install ${missing[*]}"
    run apt-get update
    run apt-get install -y --no-install-recommends "${missing[@]}"
else
    step "Debian packages already installed"
fi

if [[ ! -x $venv/bin/python ]]; then
    step "create $venv"
    run /usr/bin/python3 -m venv "$venv"
fi

# Reinstall only when the packaging metadata changed since the last install
# (the install is editable: code changes need nothing).
stamp=$venv/.bootstrap-installed
if [[ -e $stamp && $stamp -nt $repo/setup.cfg && ! $repo/pyproject.toml -nt $stamp ]]; then
    step "cni-sysctl[test] already installed in .venv"
else
    step "pip install -e .[test] into .venv"
    run "$venv/bin/python" -m pip install --disable-pip-version-check -e "$repo[test]"
    touch "$stamp"
fi

step "build .build/cnitool"
run "$repo/tools/build-cnitool.sh" "$repo/.build/cnitool"

step "build .build/cni-sysctl-shim (daemon mode)"
run bash "$repo/shim/build.sh" "$repo/.build/cni-sysctl-shim"

# The netlink layer is checked against the oldest pyroute2 setup.cfg allows as well as the
# newest (in .venv): a second, small venv (the tests import cni_sysctl from the checkout).
oldest=$repo/.build/venv-pyroute2-oldest
if [[ ! -x $oldest/bin/python || $repo/setup.cfg -nt $oldest/.installed ]]; then
    step "create $oldest (pyroute2 0.7.2)"
    run /usr/bin/python3 -m venv "$oldest"
    run "$oldest/bin/python" -m pip install --disable-pip-version-check pyroute2==0.7.2 PyYAML pytest hypothesis
    touch "$oldest/.installed"
fi

step "done"
