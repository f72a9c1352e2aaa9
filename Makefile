# Everything a new machine needs: `make demo` and `make test` (see README).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: venv test lint demo shell messages settings-table bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@echo "Installing the Python packages into $(VENV) (about a minute, once)..."
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

# manage.py refuses to start with DEBUG off on the public development secret; lint needs no real one.
lint: export DJANGO_SECRET_KEY ?= lint-only-placeholder-secret-key
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy batches fakedify
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

demo: venv
	$(PY) scripts/demo.py $(DEMO_ARGS)

# A shell whose manage.py commands work against the running demo (its database, secrets and cluster).
shell: venv
	@test -f .demo/env || { echo "no .demo/env: run make demo first" >&2; exit 1; }
	@echo "manage.py commands now work against the demo; exit to leave"
	@set -a; . ./.demo/env; set +a; PATH="$(CURDIR)/$(VENV)/bin:$$PATH" exec $${SHELL:-/bin/sh}

# Update the Simplified Chinese catalog from the code and templates and compile it (needs GNU gettext).
messages: venv
	$(PY) scripts/messages.py

# README's tables of the app's settings, written from batches/conf.py (tests/test_conf.py fails while they differ).
settings-table: venv
	$(PY) scripts/settings_table.py

# Quick versions of every benchmark (each under a minute); use DATABASE_URL=postgres://… for real figures.
bench: venv
	$(PY) bench/throughput.py --quick
	$(PY) bench/throughput.py --cpu --rows 3000
	$(PY) bench/limits.py --quick
	$(PY) bench/scale.py --quick
	$(PY) bench/chaos.py --quick

clean:
	rm -rf $(VENV) db.sqlite3* test-db.sqlite3* .demo
