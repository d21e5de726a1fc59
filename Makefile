# Two commands set up a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PY := .venv/bin/python
# uv from PATH, else the uv that pip installs as a module (works without ~/.local/bin on PATH).
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
UV_PIN := uv>=0.13,<0.14
export PREFECT_HOME ?= $(CURDIR)/.prefect
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: longv finetune pretrain experiment annotate chromium labelstudio llamafactory demo test test-all bench serve clean venv lint detector postgres postgres-up prefect-pg worker deploy labelstudio-pg

venv: .venv/.synced

.venv/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || \
	  python3 -m pip install -q "$(UV_PIN)" || python3 -m pip install -q --user --break-system-packages "$(UV_PIN)"
	$(UV) sync --frozen
	@touch $@

labelstudio: .venv-labelstudio/.synced

.venv-labelstudio/.synced: annotation/labelstudio.lock.txt .venv/.synced
	test -x .venv-labelstudio/bin/python || $(UV) venv -q .venv-labelstudio --python 3.11
	$(UV) pip sync -q --python .venv-labelstudio/bin/python annotation/labelstudio.lock.txt  # --python: `python3 -m uv` would install into the python running it
	@touch $@

llamafactory: .venv-llamafactory/.synced ## LLaMA-Factory's own environment, for the test of its dataset loader on our export

.venv-llamafactory/.synced: tests/llamafactory.lock.txt .venv/.synced
	test -x .venv-llamafactory/bin/python || $(UV) venv -q .venv-llamafactory --python 3.11
	$(UV) pip sync -q --python .venv-llamafactory/bin/python tests/llamafactory.lock.txt
	@touch $@

chromium: ## Debian's chromium for the browser test (never a downloaded browser)
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

postgres: ## Debian's PostgreSQL for the scale-out profile and its tests (never a downloaded build)
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }

# The scale-out profile (README "Scale out"): each target runs one piece in the foreground.
postgres-up: venv postgres ## PostgreSQL under .postgres/ on 127.0.0.1:5433, databases prefect + labelstudio
	$(PY) -m gcot scale postgres-up

prefect-pg: venv ## Prefect server on that PostgreSQL at http://127.0.0.1:4200
	$(PY) -m gcot scale prefect-server

deploy: venv ## build-gcot/local into the process work pool `gcot` (PREFECT_API_URL set)
	$(PY) -m gcot scale deploy

worker: venv ## a process worker of the pool `gcot` (PREFECT_API_URL set; start several)
	$(PY) -m gcot scale worker

labelstudio-pg: venv labelstudio ## Label Studio on that PostgreSQL at http://127.0.0.1:8080
	$(PY) -m gcot scale labelstudio-pg

annotate: venv labelstudio ## Label Studio with the demo release pushed; prints the URL and how to log in
	@test -d releases/demo || $(MAKE) demo
	$(PY) -m gcot review serve --push releases/demo

demo: venv ## build the embedded synthetic default and print where the release went
	$(PY) -m gcot build --source synthetic --images 300 --seed 7 --out releases/demo --overwrite

longv: venv ## LongV-EVAL on the embedded default: 3 synthetic one-minute videos -> releases/longv-demo
	$(PY) -m gcot build-longv --videos synthetic --count 3 --seed 0 --out releases/longv-demo --overwrite

test: venv labelstudio chromium lint ## the default test suite (fast + real-server tests; slow ones, LLaMA-Factory's and PostgreSQL's among them, excluded: make test-all)
	$(PY) -m pytest -q

lint: venv
	.venv/bin/ruff check .
	.venv/bin/lint-imports --no-cache

test-all: venv labelstudio llamafactory chromium postgres ## everything, the slow tests too
	$(PY) -m pytest -q -m ""

bench: venv labelstudio ## benchmarks, printing numbers
	$(PY) benchmarks/bench_build.py
	$(PY) benchmarks/bench_detect.py
	$(PY) benchmarks/bench_review.py
	$(PY) benchmarks/bench_masked_head.py
	$(PY) benchmarks/bench_longv.py
	$(PY) benchmarks/bench_models.py
	$(PY) benchmarks/bench_scale.py
	$(PY) benchmarks/bench_vg_scale.py
	$(PY) benchmarks/bench_efficiency.py
	$(PY) benchmarks/bench_kernels.py
	$(PY) benchmarks/bench_swap.py

finetune: venv ## fine-tune the tiny offline model on the demo release (about a minute on 2 cores)
	@test -d releases/demo || $(MAKE) demo
	$(PY) training/finetune.py --config training/configs/tiny_cpu.yaml --overwrite

pretrain: venv ## pretrain the grounding model on synthetic scenes -> training/weights/gcot-grounding (about 65 min on 2 CPU cores; see README: it does not ground yet)
	@test -d releases/demo || $(MAKE) demo
	$(PY) training/pretrain.py --config training/configs/pretrain.yaml --overwrite

experiment: venv ## MM-GCoT's experiment: plain rows vs GCoT rows from the grounding model, three protocols, table with 95 % intervals
	@test -d releases/demo || $(MAKE) demo
	@test -f training/weights/gcot-grounding/config.json || $(MAKE) pretrain
	$(PY) training/experiment.py --overwrite

serve: venv ## local Prefect server + the build-gcot/local deployment
	$(PY) -m gcot serve

clean:
	rm -rf releases .gcot-work .prefect test-output bench-output

detector: venv ## retrain the shipped detector on synthetic scenes (two stages, about 50 min on 2 CPU cores)
	$(PY) -m gcot detector train --epochs 30 --overwrite
	$(PY) -m gcot detector train --epochs 20 --init pipeline/detect/weights/gcot-yolo11n.pt --overwrite
