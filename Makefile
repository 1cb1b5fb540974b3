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

# tiny corpus -> features -> Conformer-CTC phone model (scratch layers, a fixed 15 epochs) -> greedy
# decoding; prints the test PER table (all voices, voices heard in training, the voice heard only in
# test), then lm build -> tune on dev -> decode --beam 20 --lm (words via the CMU lexicon) and prints
# the WER/PER table of greedy / lexicon / lexicon + 3-gram LM, and the output paths.
# A re-run continues where it stopped; a busy machine only takes longer.
demo: $(STAMP)
	$(VENV)/bin/asrkit demo --out $(DEMO_DIR)

clean-venv:
	rm -rf $(VENV)
