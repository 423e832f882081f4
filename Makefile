# The two commands a newcomer types (README): `make run` and `make test`.
# Everything else here is a step those two take.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# System packages the tests need: a real IMAP server, a real GnuPG, Sequoia for the interoperability
# tests, and the shared libraries Qt needs on a machine without a desktop.
TEST_DEBS := dovecot-imapd gnupg sq xvfb libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3 \
             libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1
# Qt's xcb platform plugin (a desktop, or Xvfb for docs/screenshots) also needs icccm and keysyms.
RUN_DEBS  := gnupg libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3 libxcb-cursor0 libxcb-icccm4 \
             libxcb-keysyms1
# The wheel's test installs it with pipx, as a user would.
TEST_DEBS += pipx

VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' imapcrypt/__init__.py)

.PHONY: run test check lint typecheck unit venv dev-venv system-test-deps system-run-deps clean \
        dist

run: system-run-deps $(BIN)/.installed-run
	$(BIN)/imapcrypt-tray

test: system-test-deps $(BIN)/.installed-dev check

check: lint typecheck unit

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
	$(BIN)/pip install --quiet -e .
	touch $@

$(BIN)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(BIN)/.installed-run

# The Python sdist and wheel in dist/, checked by twine.
dist: $(BIN)/.installed-dev
	rm -f dist/imapcrypt-$(VERSION)-py3-none-any.whl dist/imapcrypt-$(VERSION).tar.gz
	$(BIN)/python -m build --sdist --wheel --outdir dist .
	$(BIN)/twine check --strict dist/imapcrypt-$(VERSION)-py3-none-any.whl dist/imapcrypt-$(VERSION).tar.gz

system-test-deps:
	@sh installers/debian-deps.sh $(TEST_DEBS)

system-run-deps:
	@sh installers/debian-deps.sh $(RUN_DEBS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist *.egg-info
