# Two entry points (see README): `make demo` and `make test`. Both build .venv first.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export GX_ANALYTICS_ENABLED := false
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: demo status-demo test lint bench install chromium postgresql

$(BIN)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/mvg-sync demo

# `mvg-sync status` on the demo's folders (mvg_sync/demo.py), not on data/state.
status-demo: install
	MVG_LANDING_DIR=data/demo/landing MVG_STATE_DIR=data/demo/state MVG_REPORT_DIR=data/demo/reports \
		$(BIN)/mvg-sync status

# The report-rendering test opens the HTML in headless Chromium (Debian's package).
chromium:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

# The PostgreSQL store's tests start a throwaway server with Debian's initdb/pg_ctl (tests/pg.py).
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null)

lint: install
	$(BIN)/ruff check .

test: install lint chromium postgresql
	$(BIN)/python -m pytest

# `make bench` lists the benchmarks and their commands; `make bench BENCH="ingest sync_latency"` runs those.
bench: install
	$(BIN)/python -m bench $(BENCH)
