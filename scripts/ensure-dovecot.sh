#!/bin/sh
# The bounce-mailbox tests start their own Dovecot IMAP server (own config, temp dir, loopback
# port); install the Debian package when missing. The package's own service is stopped and
# disabled right away: no daemon is left running on the machine.
set -e
if command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ]; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "dovecot is missing and apt-get is not available: install dovecot-imapd yourself" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
echo "Installing Debian packages for the IMAP tests: dovecot-imapd"
$SUDO apt-get update -qq
# policy-rc.d exit 101 keeps the package scripts from starting the system service.
made_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    made_policy=1
fi
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dovecot-imapd >/dev/null || status=$?
if [ -n "$made_policy" ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
if command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now dovecot >/dev/null 2>&1 || true
fi
exit ${status:-0}
