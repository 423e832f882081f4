#!/bin/sh
# Removes what imapcrypt's install.sh installed: exactly the paths in install-manifest.txt beside this
# script, and this folder. Your configuration (~/.config/imapcrypt), keys and journals stay.
set -eu

prefix=$(cd "$(dirname "$0")" && pwd)
manifest="$prefix/install-manifest.txt"
quiet=no
[ "${1:-}" = --quiet ] && quiet=yes
if [ ! -f "$manifest" ]; then
    echo "uninstall.sh: no $manifest, so nothing to remove" >&2
    exit 1
fi
entries=$(cat "$manifest")

# A daemon enabled from this install is stopped and disabled first.
if command -v systemctl >/dev/null 2>&1 && systemctl --user is-enabled imapcrypt.service >/dev/null 2>&1; then
    systemctl --user disable --now imapcrypt.service >/dev/null 2>&1 || true
fi

printf '%s\n' "$entries" | while IFS= read -r line; do
    kind=${line%% *}
    path=${line#* }
    case "$kind" in
        file) rm -f "$path" ;;
        autostart)
            # Written by the install or by the tray's Settings: removed when it starts this install.
            if [ -f "$path" ] && grep -qF "$prefix/imapcrypt-tray" "$path"; then rm -f "$path"; fi ;;
        wants)
            # `systemctl --user enable` linked the unit here (gone already if systemctl disabled it).
            if [ -L "$path" ]; then rm -f "$path"; fi
            rmdir "$(dirname "$path")" 2>/dev/null || true ;;
    esac
done

rm -rf "$prefix"
# The folders the install created, deepest first, each only if nothing else is in it now.
printf '%s\n' "$entries" | sed -n '1!G;h;$p' | while IFS= read -r line; do
    case "$line" in "dir "*) rmdir "${line#dir }" 2>/dev/null || true ;; esac
done
if command -v systemctl >/dev/null 2>&1; then systemctl --user daemon-reload >/dev/null 2>&1 || true; fi
if [ "$quiet" = no ]; then
    echo "imapcrypt is removed from $prefix. Your configuration, keys and journals are where they were."
fi
