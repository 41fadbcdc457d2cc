# Two commands for a newcomer:  `make run`  and  `make test`.
# Both need only Python 3.11 on the machine; everything else goes into ./.venv.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
# The sandbox gateway posts notifies back to this address, so it follows PORT.
export OMS_SITE_URL ?= http://127.0.0.1:$(PORT)

.PHONY: run test lint bench-intake messages

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

## make messages: re-extract the Chinese source strings into locale/en, list those without English,
# compile both catalogues. Needs GNU gettext (Debian: apt-get install gettext). See docs/i18n.md.
EN_PO := locale/en/LC_MESSAGES/django.po
messages: $(VENV)/.installed-dev
	@command -v msgattrib >/dev/null || { echo "make messages needs GNU gettext: apt-get install gettext" >&2; exit 1; }
	@$(PY) manage.py makemessages -l en --add-location=file -v 0 \
		--ignore=.venv --ignore=bench --ignore=tests --ignore=var --ignore=staticfiles
	@$(PY) manage.py compilemessages -l en -l zh_Hans --ignore=.venv -v 0
	@msgattrib --untranslated --no-obsolete --no-wrap $(EN_PO) | grep -v '^#, python-format' >var/untranslated.po || true
	@msgattrib --only-fuzzy --no-obsolete --no-wrap $(EN_PO) >>var/untranslated.po || true
	@printf '%s: ' $(EN_PO); msgfmt --statistics -o /dev/null $(EN_PO)
	@if grep -q '^msgid "[^"]' var/untranslated.po; then \
		echo "Without English, or with only a fuzzy guess to check (also in var/untranslated.po). Write their msgstr in $(EN_PO), drop the '#, fuzzy' line, run make messages again:"; \
		grep -B1 -A1 '^msgid "[^"]' var/untranslated.po | grep -v '^--$$'; \
	else echo "Every string has English."; fi
