# graphapp / graphsite. Needs only Python 3 and make: everything else goes into .venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
STAMP  := $(VENV)/.installed

.PHONY: install run test lint typecheck pytest chromium node-clients nginx clean screenshots
.PHONY: gettext messages compilemessages

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py bootstrap_admin
	@echo "graphsite on http://$(HOST):$(PORT)/  (admin: /admin/, live page: /graph/live/)"
	$(BIN)/python -m graphapp.daphne -b $(HOST) -p $(PORT) graphsite.asgi:application

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy --strict graphapp graphsite bench

# The whole suite twice: on the embedded default (SQLite, in-memory layer), then on
# PostgreSQL + Redis (TEST_DATABASE_URL, TEST_REDIS_URL; skipped with a message when
# they cannot be reached, unless GRAPHAPP_REQUIRE_SERVICES=1).
# The browser tests drive Debian's chromium (never a downloaded browser); install it
# when missing and possible, else those tests skip (or fail under GRAPHAPP_REQUIRE_SERVICES).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is not installed and cannot be installed here: browser tests will skip"; fi; }

# Node's eventsource for tests/test_clients.py, in tests/js/node_modules only (the
# versions of tests/js/package-lock.json); Debian's nodejs and npm when missing.
NODE_CLIENTS := tests/js/node_modules/.package-lock.json
$(NODE_CLIENTS): tests/js/package.json tests/js/package-lock.json
	@command -v npm >/dev/null 2>&1 || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
	cd tests/js && npm ci --no-audit --no-fund --loglevel=error
	touch $@

node-clients: $(NODE_CLIENTS)

# tests/test_nginx.py runs Debian's nginx with deploy/nginx/graphapp.conf, in a prefix
# of its own. Installed like chromium; the system's nginx service is never started
# (a policy-rc.d that refuses, for the time of the install, where none is in place).
nginx:
	@test -x /usr/sbin/nginx || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    policy=/usr/sbin/policy-rc.d; ours=; \
	    if [ ! -e $$policy ]; then printf '#!/bin/sh\nexit 101\n' >$$policy; chmod +x $$policy; ours=1; fi; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; \
	    status=$$?; [ -z "$$ours" ] || rm -f $$policy; exit $$status; \
	  else echo "nginx is not installed and cannot be installed here: nginx tests will skip"; fi; }

# Translations (graphapp/locale) are extracted and compiled by GNU gettext's tools,
# which tests/test_i18n.py runs too: install Debian's gettext when missing.
gettext:
	@{ command -v xgettext && command -v msgfmt; } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gettext >/dev/null; \
	  else echo "gettext is not installed and cannot be installed here: tests/test_i18n.py will fail"; fi; }

# After changing a marked string: `make messages`, translate what is new or fuzzy in
# graphapp/locale/de/LC_MESSAGES/*.po (and graphsite's, its lockout page), then
# `make compilemessages` (the .mo files are committed: a Django app ships them).
messages: install gettext
	cd graphapp && $(abspath $(BIN))/python ../manage.py makemessages -l de -d django --no-obsolete
	cd graphapp && $(abspath $(BIN))/python ../manage.py makemessages -l de -d djangojs --no-obsolete
	cd graphsite && $(abspath $(BIN))/python ../manage.py makemessages -l de -d django --no-obsolete

compilemessages: install gettext
	cd graphapp && $(abspath $(BIN))/python ../manage.py compilemessages
	cd graphsite && $(abspath $(BIN))/python ../manage.py compilemessages

# Then the embedded run once more on the newest Django and Python (noxfile.py;
# .venv itself is Django 5.2 on Python 3.11).
pytest: install chromium node-clients nginx gettext
	$(BIN)/pytest
	GRAPHAPP_SERVICES=1 $(BIN)/pytest
	$(BIN)/nox --session "tests(django6.1)"

test: lint typecheck docs pytest

# The documentation site (docs/, Sphinx with MyST) into build/docs/; a warning fails it.
.PHONY: docs
docs: install
	$(BIN)/sphinx-build -W --keep-going -b html docs build/docs

# The README's screenshots (docs/screenshots); the suite's own go to build/screenshots.
screenshots: install chromium
	GRAPHAPP_SCREENSHOTS=docs/screenshots $(BIN)/pytest tests/test_browser.py

clean:
	rm -rf $(VENV) .nox .venv-bench staticfiles build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache tests/js/node_modules

# Benchmarks (not part of `make test`): bench/ against django-eventstream, a bare
# async view and the old polling design, in a venv of their own (.venv-bench) so
# that django-eventstream never becomes a dependency. `bench` takes about 20 minutes
# and writes docs/benchmarks.md, docs/bench/*.png and docs/bench/results.json;
# `bench-quick` takes a minute or two and writes to build/bench-quick/.
BENCH_VENV  := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

.PHONY: bench bench-quick bench-venv

$(BENCH_STAMP): requirements.txt bench/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -r requirements.txt -r bench/requirements.txt
	touch $(BENCH_STAMP)

bench-venv: $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	timeout --kill-after=30 1800 $(BENCH_VENV)/bin/python -m bench --out docs

bench-quick: $(BENCH_STAMP)
	timeout --kill-after=30 600 $(BENCH_VENV)/bin/python -m bench --quick --out build/bench-quick
