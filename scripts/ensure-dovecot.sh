#!/bin/sh
# The bounce-mailbox tests start their own Dovecot IMAP server (own config, temp dir, loopback
# port); install the Debian package when missing. The package's own service is never started
# and is disabled: no daemon is left running on the machine.
set -e
. "$(dirname "$0")/apt.sh"
if command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ]; then exit 0; fi
apt_install "the IMAP tests" dovecot-imapd
if command -v systemctl >/dev/null 2>&1; then
    apt_sudo systemctl disable --now dovecot >/dev/null 2>&1 || true
fi
