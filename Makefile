# forklab — the two commands of the README are `make run` and `make test`; both set up first.
#
# Set-up is idempotent and needs no virtualenv: it installs the package and its dev tools with the
# interpreter's own pip, and (as root, where apt exists) Debian's PoCL so the OpenCL miner runs on
# the CPU of any machine. A stamp file remembers a finished set-up for the current pyproject.toml.

PYTHON ?= python3
STAMP := .setup-done
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PIP_BREAK_SYSTEM_PACKAGES := 1
export PIP_ROOT_USER_ACTION := ignore

.PHONY: run test setup lint typecheck bench clean

run: setup
	$(PYTHON) -m node devnet up --nodes 4 --miners 2 --topology ring

test: setup
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy
	$(PYTHON) -m pytest -q -p no:cacheprovider

setup: $(STAMP)

$(STAMP): pyproject.toml .ci/setup
	bash .ci/setup
	@sha256sum pyproject.toml .ci/setup > $(STAMP)

lint: setup
	$(PYTHON) -m ruff check .

typecheck: setup
	$(PYTHON) -m mypy

bench: setup
	$(PYTHON) bench/run_all.py

clean:
	rm -rf $(STAMP) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
