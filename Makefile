# leadscore: the two README commands are `make run` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RAW_DIR := data/raw
export DBT_PROFILES_DIR := $(CURDIR)

.PHONY: venv run test pytest test-dbt test-spark lint docs bench bench-quality bench-holdout clean help

help:
	@echo "make run    - set up .venv, generate demo data if data/raw has no CSV, run the nightly job"
	@echo "make test   - pytest, dbt build on a small generated dataset, sqlfluff lint"
	@echo "make lint   - sqlfluff lint models_sql dbt_project, dbt-score (project score >= 9.0)"
	@echo "make test-spark - installs the spark extra; features and scores on Spark equal DuckDB's (needs Java 17+)"
	@echo "make docs   - dbt docs generate (the feature catalog)"
	@echo "make bench  - time every stage at 64,570, 1M and 5M leads (about 25 min; BENCH_SIZES to change)"
	@echo "make bench-quality - model quality on five worlds via the CLI (about 40 min on 2 cores; QUALITY_ARGS for options)"
	@echo "make bench-holdout - the pipeline on 8 held-out tenths of the foreign train.csv: how far one score file's F1 lands (about 22 min; HOLDOUT_ARGS)"

# The virtualenv is created once and reused; it is refreshed when pyproject.toml changes.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

venv: $(STAMP)

# "holds no CSV" is the nightly's own rule (csv_input.discover_inputs: *.csv, *.CSV, *.csv.gz), so
# demo files are never generated beside files the nightly would load
run: $(STAMP)
	@if ! $(BIN)/python -c 'import sys; from pathlib import Path; from leadscore.csv_input import discover_inputs; \
	  d = Path(sys.argv[1]); sys.exit(0 if d.is_dir() and discover_inputs(d) else 1)' $(RAW_DIR); then \
	  echo "data/raw holds no CSV: generating demo data"; \
	  $(BIN)/leadscore generate --out $(RAW_DIR); \
	fi
	$(BIN)/leadscore nightly --input $(RAW_DIR)

test: $(STAMP) pytest test-dbt lint

# Two workers (the machine's two cores), one test file per worker at a time, so a file's
# session pipeline is built once; most tests wait on dbt and subprocesses, not the CPU.
pytest: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile

# dbt build (models, schema tests, unit tests, contracts) on a freshly generated small dataset
test-dbt: $(STAMP)
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	export LEADSCORE_DB="$$tmp/leadscore.duckdb"; \
	$(BIN)/leadscore generate --out "$$tmp/raw" --train-rows 4000 --score-rows 600 --seed 11; \
	$(BIN)/leadscore ingest --train "$$tmp/raw/train.csv" --score "$$tmp/raw/submission.csv"; \
	$(BIN)/dbt build --no-use-colors

# Spark (issue 14): the spark extra (dbt-spark, pyspark) goes into the same .venv once; the parity
# test builds one generated data set on DuckDB and on a local Spark session and compares the
# features row by row and the scores of one model. Needs a Java 17+ runtime.
SPARK_STAMP := $(VENV)/.installed-spark
$(SPARK_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,spark]'
	@touch $@

test-spark: $(SPARK_STAMP)
	@command -v java >/dev/null || { echo "make test-spark needs Java 17+ (Debian: apt-get install openjdk-17-jre-headless)"; exit 1; }
	LEADSCORE_TEST_SPARK=1 $(BIN)/python -m pytest -m spark tests/test_spark_parity.py

# The dbt templater opens the profile: point it at a throwaway database, never the live one.
# Then dbt-score rates the project's metadata (descriptions, owners, tests, macros) from a
# manifest parsed into the same temp folder, and fails under DBT_SCORE_MIN.
DBT_SCORE_MIN ?= 9.0
lint: $(STAMP)
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	export LEADSCORE_DB="$$tmp/lint.duckdb"; \
	echo "sqlfluff lint models_sql dbt_project"; \
	$(BIN)/sqlfluff lint models_sql dbt_project; \
	echo "dbt-score lint --fail-project-under $(DBT_SCORE_MIN)"; \
	$(BIN)/dbt parse --quiet --no-use-colors --target-path "$$tmp/target"; \
	$(BIN)/dbt-score lint --manifest "$$tmp/target/manifest.json" --show failing-items \
	  --fail-project-under $(DBT_SCORE_MIN)

docs: $(STAMP)
	$(BIN)/dbt docs generate

# issue 15's sizes: the real file's 64,570 leads and 1M (median of 3), 5M (one run)
BENCH_SIZES ?= 64570,1000000,5000000
bench: $(STAMP)
	$(BIN)/leadscore bench --sizes $(BENCH_SIZES)

# bench/quality.py --help for the options, e.g. QUALITY_ARGS="--worlds a,c --skip-long --no-ablation"
bench-quality: $(STAMP)
	$(BIN)/python bench/quality.py $(QUALITY_ARGS)

# bench/holdout.py --help: --data DIR (a train.csv with labels), --splits, --share, --budget
bench-holdout: $(STAMP)
	$(BIN)/python bench/holdout.py $(HOLDOUT_ARGS)

clean:
	rm -rf target logs .pytest_cache
