#!/bin/sh
# The DKIM and STARTTLS tests make their keys and certificates with the openssl command.
# Install the Debian package when missing (it starts nothing).
set -e
if command -v openssl >/dev/null 2>&1; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "openssl is missing and apt-get is not available: install it yourself" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
echo "Installing openssl for the DKIM and TLS tests"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends openssl >/dev/null
