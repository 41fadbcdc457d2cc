# Two commands for a newcomer:  `make run`  and  `make test`.
# Both need only Python 3.11 on the machine; everything else goes into ./.venv.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
# The sandbox gateway posts notifies back to this address, so it follows PORT.
export OMS_SITE_URL ?= http://127.0.0.1:$(PORT)

.PHONY: run test lint bench-intake

$(VENV)/.installed-%: requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -r $(if $(filter dev,$*),requirements-dev.txt,requirements.txt)
	@touch $@

## make run: install, migrate, load demo data, start web + worker + beat (honcho)
# Development settings for every step and process: the sandbox gateway is on, DEBUG too. The
# servers' own default (oms.wsgi, oms.asgi, oms.celery) is oms.settings.prod.
run: export DJANGO_SETTINGS_MODULE := oms.settings.dev
run: $(VENV)/.installed-dev
	@$(PY) manage.py migrate --noinput -v 0
	@$(PY) manage.py seed_demo
	@PORT=$(PORT) $(PY) -m oms.banner
	@PORT=$(PORT) $(VENV)/bin/honcho -f Procfile.dev start

## make test: the whole test suite (SQLite by default; DATABASE_URL/REDIS_URL switch to PostgreSQL/Redis)
test: $(VENV)/.installed-dev
	@$(VENV)/bin/pytest -q

lint: $(VENV)/.installed-dev
	@$(VENV)/bin/lint-imports && $(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench-intake: $(VENV)/.installed-dev
	@$(PY) bench/order_intake.py
