# Two entry points: `make demo` runs the main job, `make test` passes the whole suite.
# Each creates the virtual environment it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint mosquitto nats chromium postgresql clean

# The modules setup.py compiles (worker.build.COMPILED): a change to one compiles them again.
COMPILED := $(shell $(PYTHON) -c "import runpy; \
	print(*[m.replace('.', '/') + '.py' for m in runpy.run_path('worker/build.py')['COMPILED']])")

$(BIN)/drivesim: pyproject.toml setup.py worker/build.py $(COMPILED)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The dependencies first, with drivesim as Python; then drivesim again, compiled: mypyc
	# type-checks what it compiles against the modules it imports, so they must be there.
	DRIVESIM_COMPILE=0 $(BIN)/pip install --quiet -e '.[dev]'
	# Which build it is, and why when it is pure Python: one line from setup.py.
	$(BIN)/pip install -v --no-deps -e . >$(VENV)/build.log 2>&1 || \
		(tail -40 $(VENV)/build.log; exit 1)
	@sed -n 's/^ *drivesim: /drivesim: /p' $(VENV)/build.log | sort -u
	touch $@

# The tests start their own Mosquitto; install Debian's package when it is missing.
mosquitto:
	@command -v mosquitto >/dev/null || test -x /usr/sbin/mosquitto || \
		(apt-get update -qq && apt-get install -y -qq mosquitto mosquitto-clients >/dev/null)

# The NATS tests start a three-node cluster speaking MQTT; install Debian's nats-server.
nats:
	@command -v nats-server >/dev/null || test -x /usr/sbin/nats-server || \
		(apt-get update -qq && apt-get install -y -qq nats-server >/dev/null)

# The PostgreSQL store's tests start a server of their own; install Debian's when missing.
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq postgresql >/dev/null)

# The HTML report tests render pages in headless Chromium; install Debian's package too.
chromium:
	@command -v chromium >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

demo: $(BIN)/drivesim
	$(BIN)/drivesim demo

lint: $(BIN)/drivesim
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint mosquitto nats chromium postgresql
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
