# Two commands on a fresh machine: `make run` (app on the demo atlas) and `make test` (whole suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
ATLAS ?= data/atlases/sdss10k
PORT ?= 8501

.PHONY: run test venv dev-venv demo chromium lint bench

$(VENV)/.runtime: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(PY) -m pip install -r requirements-dev.txt
	touch $@

venv: $(VENV)/.runtime
dev-venv: $(VENV)/.dev

demo: venv
	@if [ ! -d "$(ATLAS)/atlas_meta.lance" ]; then $(PY) -m embeddings demo --atlas $(ATLAS); fi

run: demo
	ARP_ATLAS=$(ATLAS) $(VENV)/bin/streamlit run app.py --server.port $(PORT)

chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver)

test: dev-venv chromium
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest -n 2 --timeout 900 --reruns 1 --reruns-delay 2

lint: dev-venv
	$(PY) -m ruff check .
	$(PY) -m mypy

bench: venv
	for f in benchmarks/*.py; do $(PY) $$f; done
