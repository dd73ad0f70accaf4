# Two commands:  `make run` (set up, start the app)  and  `make test` (set up, run the tests).
PYTHON ?= python3
TORCH  ?= torch==2.13.0
VENV   := .venv
BIN    := $(VENV)/bin
ARGS   ?=

.PHONY: run test setup setup-dev browser postgres bench
run: setup
	$(BIN)/python app.py $(ARGS)

test: setup-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest $(ARGS)

setup: $(VENV)/.runtime
setup-dev: $(VENV)/.dev browser postgres

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt requirements-offline.txt | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -r requirements-offline.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

# The browser test drives Debian's Chromium through Playwright (Playwright's own browser
# download is not needed).
browser:
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium fonts-noto-color-emoji; }

# The moderation-log tests start a throw-away cluster from Debian's PostgreSQL binaries
# (tests/postgres.py); nothing is configured system-wide.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }

bench: setup-dev
	$(BIN)/python bench/guard.py --json
	$(BIN)/python bench/chat.py --json
	$(BIN)/python bench/turn.py --json
