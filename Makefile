# The same checks CI runs (the test suite also runs ruff, mypy and the layer contracts).
VENV ?= .venv
PY := $(VENV)/bin

.PHONY: install check lint types layers test serve bench

$(PY)/orch8:
	python3 -m venv $(VENV) && $(PY)/pip install -q -e '.[test]'

install: $(PY)/orch8

lint: install
	$(PY)/ruff check src tests bench
	$(PY)/ruff format --check src tests bench

types: install
	$(PY)/mypy src

layers: install
	$(PY)/lint-imports
	@if [ -f ../shared/tools/layercheck.py ]; then python3 ../shared/tools/layercheck.py .; fi

test: install
	$(PY)/pytest

check: lint types layers test

serve: install
	$(PY)/orch8 serve

bench: install
	$(PY)/python bench/throughput.py
