# The README's commands. Every target sets up the virtual environment first (idempotent, fast when done).
#   make tutorial   run every notebook in order, headless, on PROFILE (default: cpu, offline)
#   make test       run the test suite (unit, integration, notebooks on the smoke profile)
#   make lab        open JupyterLab on notebooks/
PYTHON ?= python3
VENV ?= .venv
PROFILE ?= cpu
# GPU users: install your CUDA build of torch into $(VENV) first, then `make setup TORCH_SPEC=skip`.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: setup tutorial smoke test test-fast lab strip clean

setup: $(VENV)/.setup-stamp

$(VENV)/.setup-stamp: pyproject.toml scripts/setup.sh
	PYTHON="$(PYTHON)" VENV="$(VENV)" TORCH_SPEC="$(TORCH_SPEC)" bash scripts/setup.sh
	touch $@

tutorial: setup
	$(BIN)/rerank-utils run-notebooks --profile $(PROFILE)

smoke: setup
	$(BIN)/rerank-utils run-notebooks --profile smoke

test: setup
	$(BIN)/python -m pytest -ra

test-fast: setup
	$(BIN)/python -m pytest -ra -m "not notebooks"

lab: setup
	$(BIN)/python -m pip install -q -e ".[lab]"
	$(BIN)/jupyter lab notebooks/

strip: setup
	$(BIN)/nbstripout --keep-id notebooks/*.ipynb

clean:
	rm -rf artifacts .pytest_cache
