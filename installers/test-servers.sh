#!/bin/sh
# Unpacks the IMAP servers the tests run beside Dovecot (Cyrus, Courier, GNU Mailutils imap4d) into a
# cache directory, one tree per server: DIR/cyrus/root, DIR/courier/root, DIR/mailutils/root.
#
# Their Debian packages conflict with dovecot-imapd (installing one removes it), so they are never
# installed: `apt-get download` + `dpkg -x` only. The shared libraries they need conflict with nothing
# and are ordinary TEST_DEBS in the Makefile. Idempotent: a server whose tree was unpacked from the same
# package list is left alone (delete DIR, or `make clean`, to pick up newer Debian packages).
#
# Usage: installers/test-servers.sh [DIR]   (default: $IMAPCRYPT_TEST_SERVERS or build/servers)
set -eu

dir="${1:-${IMAPCRYPT_TEST_SERVERS:-build/servers}}"

if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg >/dev/null 2>&1; then
    echo "imapcrypt: no apt-get/dpkg here; the Cyrus, Courier and Mailutils tests will be skipped" >&2
    exit 0
fi

apt_lists_checked=""

# A fresh machine may have no package lists yet: update them once, before the first download.
# A download that still fails stops `make test`, loudly: better than silently skipped tests.
need_apt_lists() {
    [ -n "$apt_lists_checked" ] && return 0
    apt_lists_checked=yes
    apt-cache show cyrus-imapd >/dev/null 2>&1 && return 0
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq
    else
        echo "imapcrypt: apt knows no cyrus-imapd; run 'sudo apt-get update' first" >&2
        exit 1
    fi
}

unpack() {
    name="$1"
    shift
    want="$*"
    stamp="$dir/$name/packages"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -d "$dir/$name/root" ]; then
        return 0
    fi
    need_apt_lists
    echo "Unpacking $name for the tests:$(printf ' %s' "$@")"
    rm -rf "$dir/$name"
    mkdir -p "$dir/$name/debs" "$dir/$name/root"
    # apt drops to the _apt user to download unless told not to; the cache may not be reachable by it.
    (cd "$dir/$name/debs" && apt-get download -qq -o APT::Sandbox::User=root "$@")
    for deb in "$dir/$name/debs"/*.deb; do
        dpkg -x "$deb" "$dir/$name/root"
    done
    rm -rf "$dir/$name/debs"
    echo "$want" >"$stamp"
}

unpack cyrus cyrus-common cyrus-imapd
unpack courier courier-imap courier-base courier-authlib courier-authlib-userdb courier-authdaemon \
    libcourier-unicode4
unpack mailutils mailutils-imap4d libmailutils9 mailutils-common
