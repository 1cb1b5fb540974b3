# asrkit — the two commands of the README:
#   make demo   set up .venv and the package, run the demo pipeline on the embedded tiny corpus
#   make test   set up .venv and the package, install the Debian tools the tests use where this machine
#               allows it (root + apt-get: tools/install_debian_deps.sh), run the test suite. CI runs exactly this.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.asrkit-installed
# torch and torchaudio are pinned to a pair verified to load together here.
TORCH_PINS := torch==2.14.1 torchaudio==2.11.0
DEMO_DIR ?= exp/demo

.PHONY: demo test setup clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH_PINS)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

test: $(STAMP)
	@tools/install_debian_deps.sh
	$(PY) -m pytest -q --durations=10

# tiny corpus -> features -> CTC phone model (a few minutes) -> greedy decoding -> PER table,
# then lm build -> tune on dev -> decode --beam 20 --lm (words via the CMU lexicon) -> WER/PER table;
# a re-run continues where it stopped. DEMO_MINUTES is the training time budget.
DEMO_MINUTES ?= 5
demo: $(STAMP)
	$(VENV)/bin/asrkit demo --out $(DEMO_DIR) --minutes $(DEMO_MINUTES)

clean-venv:
	rm -rf $(VENV)
