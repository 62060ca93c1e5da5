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
	HF_HUB_OFFLINE=1 .venv/bin/python -m pytest $(PYTEST_ARGS) tests

test-host: env-host
	HF_HUB_OFFLINE=1 LORA_TRAINER_STACK=host .venv-host/bin/python -m pytest $(PYTEST_ARGS) tests

test-forge: env-forge
	HF_HUB_OFFLINE=1 LORA_TRAINER_STACK=forge .venv-forge/bin/python -m pytest $(PYTEST_ARGS) tests

test-py310: env-py310
	@if [ -x .venv-py310/bin/python ]; then \
		.venv-py310/bin/python -c "import lora_trainer, lora_trainer.config.schema, lora_trainer.config.files, lora_trainer.config.steps, lora_trainer.data.dataset; print('lora_trainer imports under', __import__('sys').version.split()[0])" && \
		.venv-py310/bin/python -m pytest $(PYTEST_ARGS) tests; \
	fi

# Every stack runs and reports, then the target fails if any of them did. The tests use one thread each, so
# two lanes run side by side (TEST_LANES=1: one after another): the newest stack with the installer's wheels
# and Python 3.10, beside the two WebUI stacks. Each stack's output is printed whole when it ends.
TEST_LANES ?= 2
LANE_A = wheelhouse test-current test-py310
LANE_B = test-host test-forge
test: env env-host env-forge env-py310
	@rm -rf .test-logs && mkdir -p .test-logs; \
	lane() { for target in "$$@"; do start=$$(date +%s); \
		$(MAKE) --no-print-directory $$target > .test-logs/$$target.log 2>&1 || echo $$target >> .test-logs/failed; \
		echo "== $$target: $$(( $$(date +%s) - start )) s" >> .test-logs/$$target.log; \
		cat .test-logs/$$target.log; done; }; \
	if [ "$(TEST_LANES)" = 1 ]; then lane $(LANE_A) $(LANE_B); \
	else lane $(LANE_A) & lane $(LANE_B) & wait; fi; \
	if [ -s .test-logs/failed ]; then echo "tests failed on:" $$(cat .test-logs/failed); exit 1; fi

clean:
	rm -rf .venv .venv-host .venv-forge .venv-py310 .test-logs $(DEMO_DIR)
