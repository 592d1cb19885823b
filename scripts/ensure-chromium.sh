#!/bin/sh
# The browser tests drive Debian's Chromium; install it (and an emoji font, so screenshots of
# editions show emoji as people see them) when missing.
set -e
PACKAGES="chromium fonts-noto-color-emoji"
missing=""
for package in $PACKAGES; do
    dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"
done
if [ -z "$missing" ]; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
    command -v chromium >/dev/null 2>&1 && exit 0
    echo "chromium is missing and apt-get is not available: install Chromium yourself" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
echo "Installing Debian packages for the browser tests:$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
