# Shared by the ensure-*.sh scripts: install Debian packages for the tests, once per machine
# state, without starting any service. Source it, then call: apt_install "why" [apt options]
# package...
apt_sudo() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# One `apt-get update` serves every script of a `make test` run (each took 10-30 s).
apt_update_once() {
    stamp="${TMPDIR:-/tmp}/newsletter-apt-updated"
    if [ -n "$(find "$stamp" -mmin -60 2>/dev/null)" ]; then return 0; fi
    apt_sudo apt-get update -qq
    touch "$stamp"
}

apt_install() {
    why="$1"
    shift
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "$* missing and apt-get is not available: install it yourself ($why)" >&2
        return 1
    fi
    echo "Installing Debian packages for $why: $*"
    apt_update_once
    # policy-rc.d exit 101 keeps the package scripts from starting their services.
    policy=/usr/sbin/policy-rc.d
    made_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | apt_sudo tee "$policy" >/dev/null
        apt_sudo chmod 755 "$policy"
        made_policy=1
    fi
    status=0
    DEBIAN_FRONTEND=noninteractive apt_sudo apt-get install -y -qq "$@" >/dev/null || status=$?
    if [ -n "$made_policy" ]; then apt_sudo rm -f "$policy"; fi
    return $status
}
