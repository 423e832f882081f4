#!/bin/sh
# Installs imapcrypt from this release archive for the current user: no root, nothing outside $HOME.
#
#   ./install.sh                 asks whether the tray app should start at login
#   ./install.sh --autostart     (or --no-autostart) the same without asking
#   ./install.sh --prefix DIR    where the programs go (default ~/.local/lib/imapcrypt)
#
# What goes where (each path is written to DIR/install-manifest.txt; DIR/uninstall.sh removes exactly
# those, and never your configuration, keys or journals):
#   DIR/                                              the programs (imapcrypt, imapcrypt-tray) and their files
#   ~/.local/bin/imapcrypt, imapcrypt-tray            links to them (skipped if something else is there)
#   $XDG_DATA_HOME/applications/imapcrypt.desktop     the launcher in the desktop's menu
#   $XDG_DATA_HOME/icons/hicolor/scalable/apps/imapcrypt.svg   its icon
#   $XDG_CONFIG_HOME/autostart/imapcrypt-tray.desktop start at login (only if chosen)
#   $XDG_CONFIG_HOME/systemd/user/imapcrypt.service   the headless daemon, for `systemctl --user`
set -eu

here=$(cd "$(dirname "$0")" && pwd)
prefix="$HOME/.local/lib/imapcrypt"
autostart=ask

usage() { sed -n '2,9s/^# \{0,1\}//p' "$0"; }
die() { echo "install.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --autostart) autostart=yes ;;
        --no-autostart) autostart=no ;;
        --prefix) [ $# -ge 2 ] || die "--prefix needs a folder"; prefix=$2; shift ;;
        --prefix=*) prefix=${1#--prefix=} ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done

[ -x "$here/imapcrypt/imapcrypt-tray" ] || die "run me from the unpacked release archive (imapcrypt/ is missing)"
case "$prefix" in /*) ;; *) prefix="$(pwd)/$prefix" ;; esac
# The path goes into a .desktop Exec line and a systemd unit: keep it to characters both take as they are.
case "$prefix$HOME" in
    *[\"\\\$\`%]* | *"
"*) die "the path $prefix has a character that launchers cannot quote (\" \\ \$ \` %); choose another with --prefix" ;;
esac

data_home=${XDG_DATA_HOME:-$HOME/.local/share}
config_home=${XDG_CONFIG_HOME:-$HOME/.config}
bin_dir="$HOME/.local/bin"
launcher="$data_home/applications/imapcrypt.desktop"
icon="$data_home/icons/hicolor/scalable/apps/imapcrypt.svg"
autostart_entry="$config_home/autostart/imapcrypt-tray.desktop"
unit_dir="$config_home/systemd/user"
unit="$unit_dir/imapcrypt.service"
manifest="$prefix/install-manifest.txt"

# An earlier install in the same place is removed first (its own manifest says what it put where);
# an upgrade keeps its choices: autostart, and the daemon enabled with `systemctl --user enable`.
was_enabled=no
if [ -f "$manifest" ] && [ -f "$prefix/uninstall.sh" ]; then
    if [ -L "$unit_dir/default.target.wants/imapcrypt.service" ]; then was_enabled=yes; fi
    if [ "$autostart" = ask ] && [ -f "$autostart_entry" ]; then autostart=yes; fi
    sh "$prefix/uninstall.sh" --quiet
elif [ -e "$prefix" ] && [ -n "$(ls -A "$prefix" 2>/dev/null)" ]; then
    die "$prefix exists and was not made by this script; remove it or choose another --prefix"
fi

if [ "$autostart" = ask ]; then
    autostart=no
    if [ -t 0 ]; then
        printf 'Start imapcrypt when you log in? [y/N] '
        read -r answer || answer=""
        case "$answer" in [yY]*) autostart=yes ;; esac
    fi
fi

# Quote a path for a Desktop Entry Exec line or a systemd ExecStart (both take "double quotes").
quoted() { case "$1" in *" "*) printf '"%s"' "$1" ;; *) printf '%s' "$1" ;; esac; }

entries=""
record() { entries="$entries$1 $2
"; }
# mkdir -p, recording every folder it creates (the uninstall removes them again if they are empty)
make_dir() {
    [ -d "$1" ] && return 0
    make_dir "$(dirname "$1")"
    mkdir "$1"
    record dir "$1"
}

make_dir "$(dirname "$prefix")"
rm -rf "$prefix.partial"
cp -R "$here/imapcrypt" "$prefix.partial"
if [ -d "$prefix" ]; then rmdir "$prefix"; fi
mv "$prefix.partial" "$prefix"
cp "$here/uninstall.sh" "$prefix/uninstall.sh"
chmod 755 "$prefix/uninstall.sh"

tray="$prefix/imapcrypt-tray"
cli="$prefix/imapcrypt"

make_dir "$bin_dir"
for name in imapcrypt imapcrypt-tray; do
    link="$bin_dir/$name"
    if [ -e "$link" ] || [ -L "$link" ]; then
        echo "note: $link exists already (another install?); left as it is. This install's is $prefix/$name"
        continue
    fi
    ln -s "$prefix/$name" "$link"
    record file "$link"
done

make_dir "$(dirname "$launcher")"
sed "s|@EXEC@|$(quoted "$tray")|" "$here/share/imapcrypt.desktop" >"$launcher"
record file "$launcher"
make_dir "$(dirname "$icon")"
cp "$here/share/imapcrypt.svg" "$icon"
record file "$icon"

# The autostart entry is the same file the tray's Settings toggle writes: the uninstall removes it
# whenever it starts this install, whoever wrote it.
record autostart "$autostart_entry"
if [ "$autostart" = yes ]; then
    make_dir "$(dirname "$autostart_entry")"
    sed "s|@EXEC@|$(quoted "$tray")|" "$here/share/imapcrypt-tray-autostart.desktop" >"$autostart_entry"
fi

make_dir "$unit_dir"
{
    echo "# imapcrypt's headless daemon, installed by install.sh ($prefix/uninstall.sh removes it)."
    echo "#   systemctl --user enable --now imapcrypt    once 'imapcrypt init' has made a configuration"
    echo "# Secrets come from password_command (a user unit usually has no unlocked Secret Service)."
    sed -e '/^#/d' -e "s|^ExecStart=.*|ExecStart=$(quoted "$cli") --daemon|" "$here/share/imapcrypt.service"
} >"$unit"
record file "$unit"
# `systemctl --user enable` links the unit here; the uninstall disables it.
record wants "$unit_dir/default.target.wants/imapcrypt.service"

printf '%s' "$entries" >"$manifest"
if command -v systemctl >/dev/null 2>&1 && systemctl --user daemon-reload >/dev/null 2>&1; then
    if [ "$was_enabled" = yes ]; then systemctl --user enable --now imapcrypt.service >/dev/null 2>&1 || true; fi
elif [ "$was_enabled" = yes ]; then
    mkdir -p "$unit_dir/default.target.wants"
    ln -sf ../imapcrypt.service "$unit_dir/default.target.wants/imapcrypt.service"
fi

echo "imapcrypt $("$cli" --version | sed 's/^imapcrypt //') is installed in $prefix."
echo "  Start it from your desktop's menu (imapcrypt), or: $tray"
if [ "$autostart" = yes ]; then echo "  It starts when you log in ($autostart_entry)."; fi
echo "  Headless instead: configure with '$cli init', then: systemctl --user enable --now imapcrypt"
if ! command -v gpg >/dev/null 2>&1; then
    echo "  imapcrypt needs GnuPG: sudo apt install gnupg (Debian, Ubuntu), or your distribution's gnupg package."
fi
echo "  To remove it: $prefix/uninstall.sh"
