# The two commands a newcomer types (README): `make run` and `make test`.
# Everything else here is a step those two take.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# System packages the tests need: a real IMAP server, a real GnuPG, Sequoia for the interoperability
# tests, neomutt in tmux (a real mail client through `imapcrypt serve`),
# and the shared libraries Qt needs on a machine without a desktop.
TEST_DEBS := dovecot-imapd gnupg sq neomutt tmux xvfb libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3 \
             libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 $(SERVER_DEBS)
# The other IMAP servers run unpacked, never installed (they conflict with dovecot-imapd; see
# installers/test-servers.sh). What they link against and their helper tools conflict with nothing:
# Cyrus (sasl2-bin for saslpasswd2), Courier, GNU Mailutils; openssl hashes the test passwords.
SERVER_DEBS := sasl2-bin libpcre3 libxapian30 libical3 libidn12 libgamin0 libltdl7 libgsasl18 \
               libmariadb3 openssl util-linux
# Qt's xcb platform plugin (a desktop, or Xvfb for docs/screenshots) also needs icccm and keysyms.
RUN_DEBS  := gnupg libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3 libxcb-cursor0 libxcb-icccm4 \
             libxcb-keysyms1
# The frozen bundle: PyInstaller needs binutils (strip; the spec reads ELF dependencies with readelf).
BUNDLE_DEBS := binutils
# Installer tests: the launcher and unit are checked with desktop-file-validate and systemd-analyze;
# the wheel is installed with pipx, as a user would.
TEST_DEBS += $(BUNDLE_DEBS) desktop-file-utils systemd pipx

# The Linux release archive (docs/install.md): the PyInstaller bundle plus install.sh. `make bundle`
# rebuilds only when a source of the bundle changed.
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' imapcrypt/__init__.py)
RELEASE := dist/imapcrypt-$(VERSION)-linux-$(shell uname -m).tar.gz
BUNDLE_SOURCES := $(shell find imapcrypt ui installers/bundle -type f ! -name '*.pyc') \
                  installers/imapcrypt.spec pyproject.toml

.PHONY: run test test-fast check lint typecheck unit venv dev-venv system-test-deps system-run-deps test-servers \
        clean bundle release dist

run: system-run-deps $(BIN)/.installed-run
	$(BIN)/imapcrypt-tray

test: system-test-deps test-servers $(BIN)/.installed-dev check

check: lint typecheck unit

# The edit-test loop: everything but the tests marked slow (long end-to-end and fault runs).
# CI (`make test`) keeps running all of them.
test-fast: test-servers $(BIN)/.installed-dev lint typecheck
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy --strict imapcrypt
	@# ui/ installs as imapcrypt_ui (package-dir): show mypy the package under that name.
	@mkdir -p build/mypy && ln -sfn ../../ui build/mypy/imapcrypt_ui
	MYPYPATH=build/mypy $(BIN)/mypy --strict -p imapcrypt_ui

unit:
	$(BIN)/pytest $(PYTEST_ARGS)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(BIN)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[serve]'
	touch $@

$(BIN)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,bundle,serve]'
	touch $@ $(BIN)/.installed-run $(BIN)/.installed-bundle

$(BIN)/.installed-bundle: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[bundle]'
	touch $@ $(BIN)/.installed-run

# The frozen programs in dist/imapcrypt/ (installers/imapcrypt.spec; tests/test_bundle.py runs them).
bundle: dist/imapcrypt/imapcrypt

dist/imapcrypt/imapcrypt: $(BIN)/.installed-bundle $(BUNDLE_SOURCES)
	@sh installers/debian-deps.sh $(BUNDLE_DEBS)
	$(BIN)/pyinstaller --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller \
	    installers/imapcrypt.spec
	touch $@

# The Linux release archive: the bundle, install.sh and uninstall.sh (installers/linux/).
release: $(RELEASE)

$(RELEASE): dist/imapcrypt/imapcrypt $(wildcard installers/linux/*) ui/icons/idle.svg
	sh installers/linux/make-archive.sh dist/imapcrypt $(VERSION) dist

# The Python sdist and wheel in dist/, checked by twine.
dist: $(BIN)/.installed-dev
	rm -f dist/imapcrypt-$(VERSION)-py3-none-any.whl dist/imapcrypt-$(VERSION).tar.gz
	$(BIN)/python -m build --sdist --wheel --outdir dist .
	$(BIN)/twine check --strict dist/imapcrypt-$(VERSION)-py3-none-any.whl dist/imapcrypt-$(VERSION).tar.gz

system-test-deps:
	@sh installers/debian-deps.sh $(TEST_DEBS)

# Cyrus, Courier and Mailutils unpacked under build/servers (cached; the tests skip them without it).
test-servers:
	@sh installers/test-servers.sh

system-run-deps:
	@sh installers/debian-deps.sh $(RUN_DEBS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist *.egg-info
