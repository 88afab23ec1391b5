# Two commands on a fresh machine (see README): `make deploy` and `make test`.
# Each creates what it needs: `make deploy` the runtime and the rehearsal's emulator in .venv, and
# node_modules (CDK CLI); `make test` adds the test tools (.venv/.dev) and .venv-checkov.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PIP_DISABLE_PIP_VERSION_CHECK := 1
CHROMIUM := /usr/bin/chromium

.PHONY: deploy synth test lint format test-unit test-construct test-emulator test-gates test-browser destroy clean acceptance refresh-lock

## deploy: with AWS credentials, deploy (quota-aware bucket choice first); without, synthesize offline
## and rehearse the whole flow on the emulator (scripts/rehearse.py: needs moto etc., hence .rehearsal).
## `make deploy ARGS=--help` prints the deploy command's own help.
## With credentials it resolves the JumpStart lock for the region first, installing sagemaker-core
## (requirements-lock.txt) into .venv on demand when the lock needs it (scripts/deploy.py says so).
deploy: $(VENV)/.rehearsal node_modules/.installed
	@$(PY) -m scripts.deploy $(ARGS)

## acceptance: the first real run in one command (scripts/acceptance.py): with AWS credentials, deploy if
## needed, train on AWS's sample dog photos, generate, write a report; without, the same flow on the emulator.
## ARGS="--destroy" removes what the run created (never the bucket or the photos). Offline it runs on the
## rehearsal's emulator (emulator/), so it needs what `make deploy` needs (.rehearsal), not the test tools.
acceptance: $(VENV)/.rehearsal node_modules/.installed
	@$(PY) -m scripts.acceptance $(ARGS)

## test: the whole suite, gates included (cdk-nag, cfn-lint, checkov, moto), on two workers
## (pytest-xdist, one test file per worker at a time, slow tiers first: tests/conftest.py);
## `make test PARALLEL=` runs it serially.
TEST_TOOLS := $(VENV)/.dev .venv-checkov/.installed node_modules/.installed $(CHROMIUM)
PARALLEL ?= -n 2 --dist loadfile --no-loadscope-reorder
test: $(TEST_TOOLS) lint
	$(PY) -m pytest $(PARALLEL) $(PYTEST_ARGS)

## lint: ruff's lint and format check (pyproject.toml [tool.ruff]); `make format` fixes what it can.
lint: $(VENV)/.dev
	$(PY) -m ruff check --quiet .
	$(PY) -m ruff format --check --quiet .

format: $(VENV)/.dev
	$(PY) -m ruff check --fix --quiet .
	$(PY) -m ruff format --quiet .

## test-unit, test-construct, test-emulator, test-gates, test-browser: one tier alone (tests/conftest.py
## gives every test its tier; docs/testing.md says what each holds and how long it takes).
TIERS := unit construct emulator gates browser
$(addprefix test-,$(TIERS)): test-%: $(TEST_TOOLS)
	$(PY) -m pytest -m $* $(PARALLEL) $(PYTEST_ARGS)

synth: $(VENV)/.runtime node_modules/.installed
	npx --no-install cdk synth --quiet $(ARGS)

destroy: $(VENV)/.runtime node_modules/.installed
	npx --no-install cdk destroy $(ARGS)

$(VENV)/.runtime: requirements.txt pyproject.toml
	@echo "Installing the runtime (AWS CDK, boto3, the dreambooth command) into $(VENV) ..."
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	# the `dreambooth` command (.venv/bin/dreambooth -> scripts/cli/, main() in commands.py); dependencies come from requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

$(VENV)/.rehearsal: $(VENV)/.runtime requirements-rehearsal.txt
	@echo "Installing the offline rehearsal's emulator (moto) into $(VENV) ..."
	$(PY) -m pip install -q -r requirements-rehearsal.txt
	touch $@

$(VENV)/.dev: $(VENV)/.rehearsal requirements-dev.txt requirements-lock.txt
	@echo "Installing the test tools into $(VENV) ..."
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

## refresh-lock: resolve stacks/training/jumpstart.lock.json with the sagemaker SDK (needs AWS credentials).
refresh-lock: $(VENV)/.runtime requirements-lock.txt
	$(PY) -m pip install -q -r requirements-lock.txt
	$(PY) -m scripts.refresh_jumpstart_lock $(ARGS)

# checkov pins an old boto3, so it gets a virtualenv of its own.
.venv-checkov/.installed: requirements-checkov.txt
	test -x .venv-checkov/bin/python || $(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install -q -r requirements-checkov.txt
	touch $@

# The web page tests (tests/web) drive Debian's Chromium through Playwright, which never downloads a
# browser of its own. Installed as root (the development machines and CI run as root).
$(CHROMIUM):
	@test "$$(id -u)" = 0 || { echo "tests/web need Debian's chromium: run 'apt-get install chromium' as root"; exit 1; }
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

node_modules/.installed: package.json package-lock.json
	@echo "Installing the AWS CDK CLI into node_modules ..."
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

clean:
	rm -rf $(VENV) .venv-checkov node_modules cdk.out build
