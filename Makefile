# Two user-facing targets: `make demo` and `make test`. Both set up .venv themselves.
.DEFAULT_GOAL := help
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin

.PHONY: help demo test test-e2e-distributed test-compat mutation venv

help:
	@echo "make demo   run the flagship example DAG against a local Rivya emulator (images land in ./output)"
	@echo "make test   lint (ruff), format check, mypy --strict, then the test suite"
	@echo "make test-e2e-distributed   only the distributed e2e (CeleryExecutor, Postgres, Redis; part of make test)"
	@echo "make test-compat   the suite (without e2e) and the example DAGs on Airflow 3.1.0, 3.2.2, 3.3.2; Python 3.10 and 3.13"
	@echo "make mutation   mutation score (mutmut) of api/, operators/, sensors/, triggers/ and their shared modules (not a CI gate)"

venv:
	@./scripts/bootstrap.sh

demo: venv
	@$(BIN)/python scripts/demo.py

test: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict rivya_provider
	$(BIN)/python -m pytest

# The distributed end-to-end test alone (make test runs it too): CeleryExecutor, Postgres 15,
# Redis 7 (installed with apt-get when missing), two workers, two triggerers, crashes.
test-e2e-distributed: venv
	$(BIN)/python -m pytest -p no:cacheprovider -s tests/e2e/test_distributed.py

# The Airflow matrix, each entry from its committed constraints (scripts/compat_constraints.py).
# Then the newest Airflow on Python 3.10 and 3.13.
test-compat: venv
	./scripts/test_compat.sh
	./scripts/test_pythons.sh

# mutmut 3 on api/, operators/, triggers/, sensors/ ([tool.mutmut] in pyproject.toml); prints the
# score per module. MUTATION_JOBS, MUTATION_NICE, MUTATION_INCREMENTAL=1: see the script.
mutation: venv
	./scripts/mutation.sh
