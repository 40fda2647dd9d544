# faceswap-tf: `make demo` runs the main job, `make test` runs the tests. Both set up .venv
# from the package registry first (Python >= 3.10; no GPU needed).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The real sample clips, read by path (see ../shared/data/README.md).
FACESWAP_DATA ?= ../shared/data
RUNS ?= runs
export FACESWAP_DATA

.PHONY: demo test lint bench clean

$(BIN)/.installed: setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

# The main job, for now: aligned faces of the sample pair A and B, then the GAN trained on
# them (resuming if runs/demo/model already holds a checkpoint).
demo: $(BIN)/.installed
	$(BIN)/python -m faceswap_tf.extract --flagfile=flags/extract_pair.flags \
		--input=$(FACESWAP_DATA)/clips/identity_a.mp4 --output_dir=$(RUNS)/demo/faces_a
	$(BIN)/python -m faceswap_tf.extract --flagfile=flags/extract_pair.flags \
		--input=$(FACESWAP_DATA)/clips/identity_b.mp4 --output_dir=$(RUNS)/demo/faces_b
	$(BIN)/python -m faceswap_tf.train --flagfile=flags/demo.flags \
		--faces_a=$(RUNS)/demo/faces_a --faces_b=$(RUNS)/demo/faces_b --model_dir=$(RUNS)/demo/model

lint: $(BIN)/.installed
	$(BIN)/ruff check faceswap_tf tests tools

test: lint
	$(BIN)/python -m pytest

bench: $(BIN)/.installed
	$(BIN)/python tools/bench

clean:
	rm -rf $(RUNS) .pytest_cache .ruff_cache
