#!/bin/sh
# `newsletter check` scores editions with SpamAssassin's local rules when it is installed;
# the tests need it. Install the Debian package when missing; no daemon is started.
set -e
. "$(dirname "$0")/apt.sh"
if command -v spamassassin >/dev/null 2>&1; then exit 0; fi
apt_install "the pre-send check tests" --no-install-recommends spamassassin
# Debian's package enables the spamd service; these tests run `spamassassin` itself.
if command -v systemctl >/dev/null 2>&1; then
    apt_sudo systemctl disable --now spamd >/dev/null 2>&1 || true
fi
