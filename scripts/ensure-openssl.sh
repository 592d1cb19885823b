#!/bin/sh
# The DKIM and STARTTLS tests make their keys and certificates with the openssl command.
# Install the Debian package when missing (it starts nothing).
set -e
. "$(dirname "$0")/apt.sh"
if command -v openssl >/dev/null 2>&1; then exit 0; fi
apt_install "the DKIM and TLS tests" --no-install-recommends openssl
