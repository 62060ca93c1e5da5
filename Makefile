# Two commands a user needs: `make demo` and `make test`. Both create the environment first.
#   .venv       current stack (newest diffusers/peft/transformers/accelerate)   -> demo, tests
#   .venv-host  the stack the A1111 WebUI holds (diffusers 0.31, peft 0.13, transformers 4.30.2, gradio 3.41)
#   .venv-forge the stack Forge holds (diffusers 0.31, peft 0.13, transformers 4.46.1, gradio 4.40)
#   .venv-py310 the WebUI's Python 3.10 without torch: import + torch-free tests
PYTHON ?= python3.11
# the first Python 3.10 that actually runs (a pyenv shim may exist without a 3.10 selected)
PY310 ?= $(shell for p in $$(ls -d $$HOME/.pyenv/versions/3.10*/bin/python3.10 2>/dev/null) python3.10; do \
	"$$p" -c "import sys; assert sys.version_info[:2] == (3, 10)" >/dev/null 2>&1 && { echo "$$p"; break; }; done)
DEMO_DIR ?= demo_output
# --durations: the 15 slowest tests of each stack are printed, so growth shows
PYTEST_ARGS ?= -q -p no:cacheprovider --durations=15
# The tests use one thread each: pytest-xdist runs a stack's test files in TEST_JOBS processes side by side (one per
# core; TEST_JOBS=1: one process).
TEST_JOBS ?= 2
XDIST = $(if $(filter-out 0 1,$(TEST_JOBS)),-n $(TEST_JOBS) --dist loadfile)

.PHONY: demo test test-current test-host test-forge test-py310 env env-host env-forge env-py310 clean

.venv/.stamp: requirements/current.txt requirements/test.txt
	$(PYTHON) -m venv .venv
	.venv/bin/python -m pip install --quiet -r requirements/current.txt -r requirements/test.txt tensorboard
	touch $@

.venv-host/.stamp: requirements/host.txt requirements/test.txt requirements/ui-test.txt
	$(PYTHON) -m venv .venv-host
	.venv-host/bin/python -m pip install --quiet -r requirements/host.txt -r requirements/test.txt -r requirements/ui-test.txt
	touch $@

.venv-forge/.stamp: requirements/forge.txt requirements/test.txt requirements/ui-test.txt
	$(PYTHON) -m venv .venv-forge
	.venv-forge/bin/python -m pip install --quiet -r requirements/forge.txt -r requirements/test.txt -r requirements/ui-test.txt
	touch $@

.venv-py310/.stamp: requirements/py310.txt
	@if [ -n "$(PY310)" ]; then \
		$(PY310) -m venv .venv-py310 && \
		.venv-py310/bin/python -m pip install --quiet -r requirements/py310.txt && touch $@; \
	else echo "Python 3.10 not found: skipping the Python 3.10 checks"; fi

env: .venv/.stamp
env-host: .venv-host/.stamp
env-forge: .venv-forge/.stamp
env-py310: .venv-py310/.stamp

demo: env
	HF_HUB_OFFLINE=1 .venv/bin/python -m lora_trainer demo --output-dir $(DEMO_DIR)

# Wheels for the install.py simulations (tests/test_install_sim.py), downloaded once (network); the
# tests then run pip offline from them, and skip when they are absent.
SIM_PYTHON ?= $(or $(PY310),$(PYTHON))
.PHONY: wheelhouse
.install-sim/wheelhouse/stamp.json: tests/install_sim.py $(wildcard tests/data/hosts/*.txt)
	$(SIM_PYTHON) tests/install_sim.py wheelhouse || echo "wheelhouse not filled (no network?): the install.py simulations will be skipped"
wheelhouse: .install-sim/wheelhouse/stamp.json

test-current: env wheelhouse
	HF_HUB_OFFLINE=1 .venv/bin/python -m pytest $(PYTEST_ARGS) $(XDIST) tests

test-host: env-host
	HF_HUB_OFFLINE=1 LORA_TRAINER_STACK=host .venv-host/bin/python -m pytest $(PYTEST_ARGS) $(XDIST) tests

test-forge: env-forge
	HF_HUB_OFFLINE=1 LORA_TRAINER_STACK=forge .venv-forge/bin/python -m pytest $(PYTEST_ARGS) $(XDIST) tests

test-py310: env-py310
	@if [ -x .venv-py310/bin/python ]; then \
		.venv-py310/bin/python -c "import lora_trainer, lora_trainer.config.schema, lora_trainer.config.files, lora_trainer.config.steps, lora_trainer.data.dataset; print('lora_trainer imports under', __import__('sys').version.split()[0])" && \
		.venv-py310/bin/python -m pytest $(PYTEST_ARGS) $(XDIST) tests; \
	fi

# Every stack runs and reports, then the target fails if any of them did. The installer's wheels download (network)
# while the two WebUI stacks run; the newest stack, which uses them, runs after.
test: env env-host env-forge env-py310
	@mkdir -p .test-logs; $(MAKE) --no-print-directory wheelhouse > .test-logs/wheelhouse.log 2>&1 & fill=$$!; \
	failed=""; for stack in host forge current py310; do \
		if [ $$stack = current ]; then wait $$fill; cat .test-logs/wheelhouse.log; fi; \
		start=$$(date +%s); $(MAKE) --no-print-directory test-$$stack || failed="$$failed $$stack"; \
		echo "== $$stack: $$(( $$(date +%s) - start )) s"; done; \
	if [ -n "$$failed" ]; then echo "tests failed on:$$failed"; exit 1; fi

clean:
	rm -rf .venv .venv-host .venv-forge .venv-py310 .test-logs $(DEMO_DIR)
