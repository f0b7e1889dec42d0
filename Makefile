# graphapp / graphsite. Needs only Python 3 and make: everything else goes into .venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
STAMP  := $(VENV)/.installed

.PHONY: install run test lint typecheck pytest chromium clean

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
	$(BIN)/daphne -b $(HOST) -p $(PORT) graphsite.asgi:application

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy --strict graphapp graphsite

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

# Then the embedded run once more on the newest Django and Python (noxfile.py;
# .venv itself is Django 5.2 on Python 3.11).
pytest: install chromium
	$(BIN)/pytest
	GRAPHAPP_SERVICES=1 $(BIN)/pytest
	$(BIN)/nox --session "tests(django6.1)"

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .nox staticfiles build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
