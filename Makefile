# The project's commands. `make run` and `make test` are the README's first two.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install run test lint typecheck pytest bench clean

install: $(STAMP)

# Reinstall whenever the pinned requirements or the dev extras change.
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -e '.[dev]'
	touch $(STAMP)

run: install
	$(PY) -m devstack.run

test: install lint typecheck infra-check pytest

lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy

pytest: install
	$(PY) -m pytest -q

bench: install
	$(PY) -m bench

clean:
	rm -rf $(VENV) .local dist .pytest_cache .mypy_cache .ruff_cache

# Offline Terraform checks, deploy bundles (infra-check defaults to nothing
# until the infrastructure fragment defines it).
infra-check::
-include mk/*.mk
