# Two commands do all set-up: `make demo` and `make test`. Both create .venv on first use.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench models clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[worker,dev,s3]'
	touch $(STAMP)

examples/model_repo: $(STAMP) examples/build_models.py
	$(PY) -m examples.build_models examples/model_repo
	touch examples/model_repo

models: examples/model_repo

demo: examples/model_repo
	$(PY) -m examples.demo

# The checks pyproject.toml configures run first: a style, import or type error fails the run.
test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m pytest

# The suite prints the one table of ours beside the baselines, and writes it as JSON to compare
# between commits; the others measure acl_core alone, offline batch, a long soak, Redis' cost
# per job and the fleet it feeds (docs/scaling.md), the clients' own CPU a job, Sentinel
# failovers (docs/reliability.md) and `aclq batch` against in-process ONNX Runtime.
# bench.memory (a multi-GB file) runs by hand.
bench: examples/model_repo
	$(PY) -m bench.suite --json bench-results.json
	$(PY) -m bench.acl_overhead
	$(PY) -m bench.batch
	$(PY) -m bench.soak
	$(PY) -m bench.round_trips
	$(PY) -m bench.clients
	$(PY) -m bench.scaling
	$(PY) -m bench.failover
	$(PY) -m bench.offline

clean:
	rm -rf $(VENV) examples/model_repo
