# Everything a new machine needs: `make demo` and `make test` (see README).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: venv test lint demo bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy batches
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

demo: venv
	$(PY) scripts/demo.py

bench: venv
	$(PY) bench/throughput.py --quick

clean:
	rm -rf $(VENV) db.sqlite3* test-db.sqlite3* .demo
