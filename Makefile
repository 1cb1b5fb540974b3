# asrkit — the two commands of the README:
#   make demo   set up .venv and the package, run the main job on the embedded data
#   make test   set up .venv and the package, run the test suite
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
	$(PY) -m pytest -q

demo: $(STAMP)
	@echo "== asrkit demo: scoring the shipped sample (asrkit/resources/demo) =="
	$(VENV)/bin/asrkit score asrkit/resources/demo/ref.txt asrkit/resources/demo/hyp.txt --cer --per-spk --confusions 5

clean-venv:
	rm -rf $(VENV)
