# The README's two commands are `make demo` and `make test`; both set the project up first if needed.
VENV  := .venv
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench compile

$(STAMP): pyproject.toml package.json package-lock.json scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/agentfleet demo

test: $(STAMP)
	bash scripts/test.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

compile:
	node contracts/compile.mjs

bench: $(STAMP)
	$(VENV)/bin/python -m bench.chain
