#!/bin/sh
# `newsletter check` scores editions with SpamAssassin's local rules when it is installed;
# the tests need it. Install the Debian package when missing; no daemon is started.
set -e
if command -v spamassassin >/dev/null 2>&1; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "spamassassin is missing and apt-get is not available: install it yourself" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
echo "Installing spamassassin for the pre-send check tests"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends spamassassin >/dev/null
# Debian's package enables the spamd service; these tests run `spamassassin` itself.
if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now spamd >/dev/null 2>&1 || true; fi
