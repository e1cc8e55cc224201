# crawlfleet: `make crawl URL=...` runs a crawl, `make test` runs every check CI runs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
ARGS   ?=

.PHONY: help install replay-env crawl test lint fmt unit soak compose-e2e bench bench-quick bench-test docs-site clean

help:
	@echo "make crawl URL=https://example.org [ARGS='--depth 2 --workers 2']  crawl on this machine"
	@echo "make test          lint, types and the test suite (what CI runs)"
	@echo "make lint          ruff and mypy only"
	@echo "make soak          crawl 20,000 pages while killing workers and Redis (minutes)"
	@echo "make compose-e2e   docker compose end to end (podman sandbox when no docker engine)"
	@echo "make bench         benchmark against Scrapy; figures to bench/results/<date>.json"
	@echo "make bench-test    the bench's own tests (its report's arithmetic, its synthetic web)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(STAMP)

# pywb, for the replay test, in a venv of its own: it pins a Redis client crawlfleet cannot use
REPLAY_VENV  := .venv-pywb
REPLAY_STAMP := $(REPLAY_VENV)/.installed
$(REPLAY_STAMP): tests/replay-requirements.txt
	$(PYTHON) -m venv $(REPLAY_VENV)
	$(REPLAY_VENV)/bin/python -m pip install -q -r tests/replay-requirements.txt
	touch $@

replay-env: $(REPLAY_STAMP)

crawl: $(STAMP)
	@test -n "$(URL)" || { echo "usage: make crawl URL=https://example.org [ARGS='--depth 2']"; exit 2; }
	$(BIN)/crawlfleet run $(URL) $(ARGS)

# mypy reads the packages under the names they install as (crawlfleet.shared...): a tree of
# links gives it those names over the folders at the root
TYPECHECK := .typecheck/crawlfleet
$(TYPECHECK):
	mkdir -p $@
	for p in shared scheduler workers; do ln -sfn ../../$$p $@/$$p; done

lint: $(STAMP) $(TYPECHECK)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

unit: $(STAMP) $(REPLAY_STAMP) docs-site
	$(BIN)/pytest -q -n auto

test: lint unit bench-test

BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	touch $@

# the bench's tests live in bench/, out of `make test`: the product's tests never import the bench
# the bench's own tests; those that crawl take the test suite's fixtures (Redis, the test web)
bench-test: $(STAMP)
	$(BIN)/python -m pytest -q -p tests.conftest bench/test_report.py

bench: $(BENCH_STAMP) bench-test
	$(BIN)/python -m bench

bench-quick: $(BENCH_STAMP) bench-test
	$(BIN)/python -m bench --quick

soak: $(STAMP)
	$(BIN)/pytest -q -s -m soak tests/faults/test_soak.py

# The Python 3.11 HTML docs (Debian's python3.11-doc): the real site that the extractor tests and
# the bench's docs scenario crawl. Installed with apt-get when running as root; else says why not.
docs-site: $(STAMP)
	$(BIN)/python -c "from bench.docs import ensure_docs; print('docs site:', ensure_docs()[1])"

compose-e2e: $(STAMP)
	$(BIN)/pytest -q -p no:randomly tests/compose --run-compose

clean:
	rm -rf $(VENV) $(REPLAY_VENV) crawl-data
