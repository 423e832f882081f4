#!/bin/sh
# Packs the frozen bundle (`make bundle`) with install.sh/uninstall.sh into the Linux release archive.
#   installers/linux/make-archive.sh BUNDLE_DIR VERSION OUT_DIR
# makes OUT_DIR/imapcrypt-VERSION-linux-ARCH.tar.gz holding one folder of that name:
#   install.sh  uninstall.sh  README.txt  imapcrypt/ (the bundle)  share/ (launcher, autostart entry,
#   systemd user unit, icon)
set -eu
[ $# -eq 3 ] || { echo "usage: $0 BUNDLE_DIR VERSION OUT_DIR" >&2; exit 2; }
bundle=$1 version=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
name="imapcrypt-$version-linux-$(uname -m)"
stage="$root/build/archive"

rm -rf "$stage"
mkdir -p "$stage/$name/share" "$out"
cp -R "$bundle" "$stage/$name/imapcrypt"
cp "$here/install.sh" "$here/uninstall.sh" "$stage/$name/"
cp "$here/imapcrypt.desktop" "$here/imapcrypt-tray-autostart.desktop" "$here/imapcrypt.service" "$stage/$name/share/"
cp "$root/ui/icons/idle.svg" "$stage/$name/share/imapcrypt.svg"
cat >"$stage/$name/README.txt" <<TEXT
imapcrypt $version for Linux ($(uname -m))

Install for yourself (no root needed):   ./install.sh
It adds imapcrypt to your desktop's menu and asks whether it should start when you log in
(--autostart or --no-autostart answer without asking). To remove it: ~/.local/lib/imapcrypt/uninstall.sh

Or run it from here without installing:  ./imapcrypt/imapcrypt-tray  (the command line: ./imapcrypt/imapcrypt)

imapcrypt needs GnuPG (gpg): sudo apt install gnupg on Debian and Ubuntu.
More: docs/install.md in imapcrypt's source.
TEXT
chmod 755 "$stage/$name/install.sh" "$stage/$name/uninstall.sh"
archive="$out/$name.tar.gz"
tar -C "$stage" --owner=0 --group=0 --numeric-owner --sort=name -czf "$archive.partial" "$name"
mv "$archive.partial" "$archive"
echo "$archive"
