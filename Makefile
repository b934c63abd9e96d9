# The two commands of the README: `make demo` (the main job) and `make test` (the whole suite).
# Both create .venv and install sparklstm into it on first use; nothing else is needed
# beyond Python >= 3.10, pip and Java 17+.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo demo-local test lint format bench bench-quick bench-spark dist notebooks clean check-python check-java

check-python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python >= 3.10 (with pip and venv)"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' || { echo "error: sparklstm needs Python >= 3.10, found $$($(PYTHON) --version 2>&1); install Python >= 3.10"; exit 1; }
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { echo "error: $(PYTHON) lacks venv/ensurepip; install the python3-venv package"; exit 1; }

check-java:
	@command -v java >/dev/null 2>&1 || { echo "error: java not found; Spark needs Java 17 or newer (e.g. apt-get install openjdk-17-jre-headless)"; exit 1; }
	@v=$$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1); [ -n "$$v" ] && [ "$$v" -ge 17 ] || { echo "error: Spark needs Java 17 or newer, found: $$(java -version 2>&1 | head -n1)"; exit 1; }

$(STAMP): pyproject.toml | check-python
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,fast,datasets,yaml,notebooks,parity,connect,mlflow]'
	@touch $(STAMP)

# The main job: generate a dataset as Parquet, train on Spark (local mode, all cores) by
# parameter averaging, then predict and evaluate with the saved model.
DEMO := runs/demo
SUBMIT := PYSPARK_PYTHON=$(CURDIR)/$(PY) $(VENV)/bin/spark-submit --master 'local[*]'
demo: $(STAMP) check-java
	$(PY) -m jobs.make_data sines --rows 12000 --seq-len 60 --min-len 20 --test-fraction 0.2 --seed 0 --out $(DEMO)/data --overwrite
	rm -rf $(DEMO)/checkpoints
	$(SUBMIT) jobs/train.py --data $(DEMO)/data/train --validation $(DEMO)/data/test \
		--hidden-sizes 64 --epochs 6 --local-steps 10 --batch-size 64 --lr 0.005 --clip-norm 5 \
		--output $(DEMO)/model --overwrite --metrics $(DEMO)/metrics.jsonl --checkpoint-dir $(DEMO)/checkpoints --checkpoint-every 10 \
		--summary $(DEMO)/train-summary.json
	$(SUBMIT) jobs/predict.py --model $(DEMO)/model --data $(DEMO)/data/test --output $(DEMO)/predictions --mode overwrite --drop-features
	$(SUBMIT) jobs/evaluate.py --model $(DEMO)/model --data $(DEMO)/data/test --output $(DEMO)/test-metrics.json

# The one-process trainer on the same kind of data (no Spark).
demo-local: $(STAMP)
	$(PY) -m jobs.train_local

# dist/sparklstm.zip for spark-submit --py-files, and a wheel for pip-installing executors.
# The wheel is built in pip's isolated build environment (the setuptools pyproject.toml asks
# for), not with whatever setuptools the venv happens to hold.
DIST ?= dist
dist: $(STAMP)
	$(PY) -m sparklstm.packaging $(DIST)/sparklstm.zip
	$(PY) -m pip wheel --quiet --no-deps -w $(DIST) .

test: $(STAMP) check-java
	$(PY) -m ruff check sparklstm jobs bench tests
	$(PY) -m ruff format --check sparklstm jobs bench tests
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check --fix sparklstm jobs bench tests
	$(PY) -m ruff format sparklstm jobs bench tests

# bench/report.md + PNG plots: kernels, Spark vs one process, scaling, convergence, accuracy.
bench: $(STAMP) check-java
	$(PY) -m bench.report --out bench

bench-quick: $(STAMP) check-java
	$(PY) -m bench.report --out bench --quick

bench-spark: $(STAMP) check-java
	$(PY) -m bench.spark --rows 100000

# Re-run the notebooks in place, so that their stored outputs are a full run of this code.
notebooks: $(STAMP) check-java
	$(PY) notebooks/run_all.py

clean:
	rm -rf $(VENV) build dist runs *.egg-info .pytest_cache .ruff_cache
