#!/bin/sh
# On a Mac: builds imapcrypt.app (the tray, with the `imapcrypt` CLI beside it in Contents/MacOS) and
# dist/imapcrypt-VERSION-macos-ARCH.dmg, the .app next to a link to /Applications.
# Needs Python >= 3.11 (python.org or Homebrew) as python3; Xcode's command line tools (hdiutil is
# part of macOS). Not built by `make test` (that runs on Linux); .github/workflows/bundles.yml runs it.
set -eu
cd "$(dirname "$0")/../.."
version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' imapcrypt/__init__.py)

python3 -m venv build/macos-venv
build/macos-venv/bin/pip install --quiet --upgrade pip
build/macos-venv/bin/pip install --quiet '.[bundle]'
# The spec makes dist/imapcrypt/ and, on macOS, dist/imapcrypt.app with LSUIElement (tray only).
build/macos-venv/bin/pyinstaller --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller \
    installers/imapcrypt.spec
dist/imapcrypt.app/Contents/MacOS/imapcrypt --version

stage=build/dmg
rm -rf "$stage"
mkdir -p "$stage"
cp -R dist/imapcrypt.app "$stage/"
ln -s /Applications "$stage/Applications"
dmg="dist/imapcrypt-$version-macos-$(uname -m).dmg"
hdiutil create -volname "imapcrypt $version" -srcfolder "$stage" -fs HFS+ -format UDZO -ov "$dmg"
echo "$dmg"
