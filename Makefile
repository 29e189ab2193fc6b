# Everyday commands. The virtualenv is made on first use and refreshed when pyproject.toml changes.
VENV  := .venv
BIN   := $(VENV)/bin
STAMP := $(VENV)/.klynge-installed

.PHONY: help venv deps test lint format demo bench fuzz pi-check
# deps and the venv may both run apt-get, which must not run twice at once.
.NOTPARALLEL:

help:
	@echo "make demo    three villages and one cluster aggregator on loopback"
	@echo "make test    the whole test suite (installs the system and npm packages it uses)"
	@echo "make lint    ruff check, ruff format --check, mypy"
	@echo "make format  ruff format and safe ruff fixes"
	@echo "make bench   every bench/*_bench.py (medians and ratios)"
	@echo "make fuzz    the fuzz tests for FUZZ_MINUTES (default 10), fresh seeds each round"
	@echo "make pi-check  the project on arm64 Raspberry Pi OS's base under emulation (root)"

$(STAMP): pyproject.toml
	@tests/setup-system.sh python3 python3-venv
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

venv: $(STAMP)

# The Debian and npm packages the tests use, each installed only when missing.
deps:
	@tests/setup-system.sh

# One pytest worker per core (pytest-xdist), at most 4: each worker starts its own chromium.
test: deps $(STAMP)
	$(BIN)/pytest -q -n auto --maxprocesses=4

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Long-budget fuzzing (tests/fuzz/session.py): per test, the inputs run and what failed.
FUZZ_MINUTES  ?= 10
FUZZ_EXAMPLES ?= 300
fuzz: $(STAMP)
	$(BIN)/python tests/fuzz/session.py --minutes $(FUZZ_MINUTES) --examples $(FUZZ_EXAMPLES)

demo: $(STAMP)
	$(BIN)/klynge demo

bench: $(STAMP)
	@set -e; found=; \
	for f in bench/*_bench.py; do \
		[ -e "$$f" ] || continue; found=1; \
		echo "== $$f"; $(BIN)/python -m bench.$$(basename "$$f" .py); \
	done; \
	[ -n "$$found" ] || echo "no bench/*_bench.py files yet"

# The project on an arm64 Debian bookworm root (Raspberry Pi OS's base) under qemu-user
# emulation, beside the same figures on this host (deploy/pi/check.sh). Not part of `make test`:
# it needs root, and the root is built once (debootstrap) and cached in /var/cache/klynge.
pi-check:
	@deploy/pi/setup.sh
	nice -n 10 deploy/pi/check.sh
