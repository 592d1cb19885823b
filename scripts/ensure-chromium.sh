#!/bin/sh
# The browser tests drive Debian's Chromium; install it (and an emoji font, so screenshots of
# editions show emoji as people see them) when missing.
set -e
. "$(dirname "$0")/apt.sh"
PACKAGES="chromium fonts-noto-color-emoji"
missing=""
for package in $PACKAGES; do
    dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"
done
if [ -z "$missing" ]; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1; then exit 0; fi
# shellcheck disable=SC2086 # the package list splits on purpose
apt_install "the browser tests" $missing
