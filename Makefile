# `make run` and `make test` work on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test test-containers lint bench bench-full bench-smoke clean browser netns

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m daskbench +experiment=sweep

# Hydra's own launcher suites get a pytest process of their own: Hydra's version base
# is process-wide (daskbench's composition sets 1.3; the suites expect the setting of
# an app that never chose one, where jobs change into their output folders). The
# launcher closes its cluster after each multirun (checked after each suite test).
# They run alongside the rest, which runs on two pytest workers (pytest-xdist; most
# tests wait on subprocesses and clusters, so a third process fills the idle time;
# their output is printed after it). Then the `serial` tests alone (signals, kills
# and deadlines: see tests/conftest.py).
HYDRA_SUITES_LOG = .hydra-suites.log
test: $(STAMP) browser netns
	$(PY) -m pytest tests/test_launcher_hydra_suites.py > $(HYDRA_SUITES_LOG) 2>&1 & suites=$$!; \
	$(PY) -m pytest -n 2 --dist loadfile --durations=15 -m "not load and not serial" --ignore=tests/test_launcher_hydra_suites.py; rest=$$?; \
	wait $$suites; hydra=$$?; cat $(HYDRA_SUITES_LOG); \
	test $$rest -eq 0 && test $$hydra -eq 0
	$(PY) -m pytest --durations=15 -m "serial and not load" --ignore=tests/test_launcher_hydra_suites.py

# Builds deploy/Dockerfile's image and runs real containers with podman: a
# containerized cluster serving sweeps and simulations, a worker container killed
# mid-sweep, and the operator's pods under `podman kube play` (tests/containers/).
# As root it installs podman, runc and debootstrap when missing; elsewhere it
# says why it cannot run and fails.
test-containers: $(STAMP)
	bash tests/containers/run.sh $(PY)

# Linter, formatter and type checker (configured in pyproject.toml); .ci/run runs it.
lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks
	$(PY) -m mypy

# The browser tests screenshot the dashboard in Debian's headless Chromium. As root
# with apt (CI) it is installed here; elsewhere those tests are skipped with a reason.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium for the browser tests"; \
	    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium not found: the browser tests will be skipped"; fi; }

# The network fault test cuts a worker off inside a network namespace with `ip`
# (iproute2). As root with apt (CI) it is installed here; elsewhere it is skipped.
netns:
	@command -v ip >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing iproute2 for the network fault test"; \
	    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null; \
	  else echo "ip (iproute2) not found: the network fault test will be skipped"; fi; }

# The benchmark suite (BENCHMARKS.md): baselines come from the `bench` extra.
BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[test,bench]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) -m benchmarks --quick

bench-full: $(BENCH_STAMP)
	$(PY) -m benchmarks --full

bench-smoke: $(BENCH_STAMP)
	$(PY) -m benchmarks --smoke

clean:
	rm -rf $(VENV) results outputs .pytest_cache
