#!/bin/sh
# Makes sure the named Debian/Ubuntu packages are installed.
# As root it installs what is missing; otherwise it stops and prints the exact command to run.
set -eu
missing=""
for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done
[ -z "$missing" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "imapcrypt: these packages are needed:$missing (install them with your system's package manager)" >&2
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "imapcrypt: missing system packages. Run this, then try again:" >&2
    echo "    sudo apt-get install -y$missing" >&2
    exit 1
fi
echo "Installing system packages:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
