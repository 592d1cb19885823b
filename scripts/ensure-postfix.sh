#!/bin/sh
# The pipelining tests and the send benchmark talk to Postfix's test tools smtp-sink and
# smtp-source (C programs that need no running Postfix). Install the package when they are
# missing, without configuring or starting the Postfix daemon.
set -e
found() {
    command -v smtp-sink >/dev/null 2>&1 || [ -x /usr/sbin/smtp-sink ]
}
if found; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "smtp-sink is missing and apt-get is not available: install Postfix yourself" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
echo "Installing Debian's postfix for smtp-sink and smtp-source (the daemon is not started)"
# "No configuration" makes the package install without a main.cf and without starting
# anything; policy-rc.d refuses every service start during the install as well.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    trap '$SUDO rm -f "$policy"' EXIT
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postfix >/dev/null
found
