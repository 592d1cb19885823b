#!/bin/sh
# The pipelining tests and the send benchmark talk to Postfix's test tools smtp-sink and
# smtp-source (C programs that need no running Postfix). Install the package when they are
# missing, without configuring or starting the Postfix daemon.
set -e
. "$(dirname "$0")/apt.sh"
found() {
    command -v smtp-sink >/dev/null 2>&1 || [ -x /usr/sbin/smtp-sink ]
}
if found; then exit 0; fi
# "No configuration" makes the package install without a main.cf and without starting
# anything (apt_install refuses every service start during the install as well).
if command -v debconf-set-selections >/dev/null 2>&1; then
    echo "postfix postfix/main_mailer_type select No configuration" \
        | apt_sudo debconf-set-selections
fi
apt_install "smtp-sink and smtp-source (the daemon is not started)" \
    --no-install-recommends postfix
found
