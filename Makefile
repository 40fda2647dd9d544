# faceswap-tf: `make demo` runs the main job, `make test` runs the tests. Both set up .venv
# from the package registry first (Python >= 3.10; no GPU needed).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The real sample clips, read by path (see ../shared/data/README.md).
FACESWAP_DATA ?= ../shared/data
VIDEO_A ?= $(FACESWAP_DATA)/clips/identity_a.mp4
VIDEO_B ?= $(FACESWAP_DATA)/clips/identity_b.mp4
RUNS ?= runs
# Other people, for identity retrieval beyond the pair (the evaluate stage's --distractors).
DISTRACTORS ?= $(FACESWAP_DATA)/clips/people,$(FACESWAP_DATA)/clips/extra_man_hoodie.mp4,$\
$(FACESWAP_DATA)/clips/extra_man_glasses.mp4,$(FACESWAP_DATA)/images/faces
export FACESWAP_DATA

.PHONY: demo test lint bench clean pretrain detect-demo

$(BIN)/.installed: setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

# The main job: aligned faces of A and B, what B's faces cover of A's, the GAN trained on
# them (resuming if runs/demo/model already holds a checkpoint), exported as export/demo (a
# new version only for a new step), exactly the frames of A's video the model held out
# converted to B's face, and that swap evaluated against controls and other people:
# runs/demo/swapped_a_report.md, _report.json and _contact_sheet.png.
demo: $(BIN)/.installed
	$(BIN)/python -m faceswap_tf.extract --flagfile=flags/extract_pair.flags \
		--input=$(VIDEO_A) --output_dir=$(RUNS)/demo/faces_a
	$(BIN)/python -m faceswap_tf.extract --flagfile=flags/extract_pair.flags \
		--input=$(VIDEO_B) --output_dir=$(RUNS)/demo/faces_b
	$(BIN)/python -m faceswap_tf.coverage --faces_a=$(RUNS)/demo/faces_a --faces_b=$(RUNS)/demo/faces_b
	$(BIN)/python -m faceswap_tf.train --flagfile=flags/demo.flags \
		--faces_a=$(RUNS)/demo/faces_a --faces_b=$(RUNS)/demo/faces_b --model_dir=$(RUNS)/demo/model
	$(BIN)/python -m faceswap_tf.export --model_dir=$(RUNS)/demo/model --name=demo --direction=a_to_b --reuse
	$(BIN)/python tools/convert --model=export/demo --input=$(VIDEO_A) --output=$(RUNS)/demo/swapped_a.mp4 \
		--min_face_size=160 --held_out_of=$(RUNS)/demo/model
	$(BIN)/python -m faceswap_tf.evaluate --original=$(VIDEO_A) --swapped=$(RUNS)/demo/swapped_a.mp4 \
		--faces_a=$(RUNS)/demo/faces_a --faces_b=$(RUNS)/demo/faces_b --model_dir=$(RUNS)/demo/model \
		--min_face_size=160 --distractors=$(DISTRACTORS)

# A base for warm starts (train --init_from=runs/pretrain/model): the demo's networks trained
# 30 minutes on the faces of every clip in $(FACESWAP_DATA)/clips/people (PEOPLE=...), both sides
# drawing from one pool. Not part of the demo; its weights are made here, never committed.
PEOPLE ?= $(FACESWAP_DATA)/clips/people
pretrain: $(BIN)/.installed
	$(BIN)/python -m faceswap_tf.extract --input=$(PEOPLE) --output_dir=$(RUNS)/pretrain/faces \
		--largest_face --min_face_size=80
	$(BIN)/python -m faceswap_tf.train --flagfile=flags/pretrain.flags \
		--faces_a=$(RUNS)/pretrain/faces --faces_b=$(RUNS)/pretrain/faces --model_dir=$(RUNS)/pretrain/model

# The detect stage at full size (measured 2026-11-30: the README's Detect section). Identity
# pairs: the demo pair (runs/demo/model: trained here if make demo has not), extra_man_hoodie/
# extra_man_glasses (a pair model trained here for DETECT_PAIR_MINUTES), and cross pairs: the
# demo model drawing identity_b's face into the frames of CROSS_A's people and identity_a's into
# CROSS_B's, so the detector sees real and swapped faces of seven people. The held-out frames of
# each pair and the cross clips are converted (faceswap_tf.detect.dataset, with CRF 23/30/35
# copies); the detector trains on everything without the two men (and without man_blue_shirt,
# whose real faces help choose the threshold), and is measured on the men's pair, a pair it never
# saw in any role (runs/detect/model/report.json); it is exported as export/detector and scores
# the demo's swap, A's unmodified clip and two people it never saw (woman_headset_mic,
# man_goatee_studio: real faces only, the false positives on strangers).
DETECT_PAIR_MINUTES ?= 8
PEOPLE_CLIPS := $(FACESWAP_DATA)/clips/people
CROSS_A ?= $(PEOPLE_CLIPS)/newsreader_man.mp4 $(PEOPLE_CLIPS)/man_blue_shirt.mp4 $(PEOPLE_CLIPS)/man_waterfront.mp4
CROSS_B ?= $(PEOPLE_CLIPS)/woman_dark_hair.mp4 $(PEOPLE_CLIPS)/older_woman_interior.mp4
STRANGERS ?= $(PEOPLE_CLIPS)/woman_headset_mic.mp4 $(PEOPLE_CLIPS)/man_goatee_studio.mp4
detect-demo: $(BIN)/.installed
	$(BIN)/python -m faceswap_tf.extract --flagfile=flags/extract_pair.flags \
		--input=$(VIDEO_A) --output_dir=$(RUNS)/demo/faces_a
	$(BIN)/python -m faceswap_tf.extract --flagfile=flags/extract_pair.flags \
		--input=$(VIDEO_B) --output_dir=$(RUNS)/demo/faces_b
	$(BIN)/python -m faceswap_tf.train --flagfile=flags/demo.flags \
		--faces_a=$(RUNS)/demo/faces_a --faces_b=$(RUNS)/demo/faces_b --model_dir=$(RUNS)/demo/model
	$(BIN)/python -m faceswap_tf.extract --flagfile=flags/extract_pair.flags \
		--input=$(FACESWAP_DATA)/clips/extra_man_hoodie.mp4 --output_dir=$(RUNS)/detect/faces_hoodie
	$(BIN)/python -m faceswap_tf.extract --flagfile=flags/extract_pair.flags \
		--input=$(FACESWAP_DATA)/clips/extra_man_glasses.mp4 --output_dir=$(RUNS)/detect/faces_glasses
	$(BIN)/python -m faceswap_tf.train --flagfile=flags/demo.flags --max_minutes=$(DETECT_PAIR_MINUTES) \
		--faces_a=$(RUNS)/detect/faces_hoodie --faces_b=$(RUNS)/detect/faces_glasses --model_dir=$(RUNS)/detect/men
	$(BIN)/python -m faceswap_tf.detect.dataset --output_dir=$(RUNS)/detect/data --min_face_size=80 \
		--pairs=$(RUNS)/demo/model,$(RUNS)/detect/men --crfs=23,30,35 --max_frames=150 \
		$(foreach clip,$(CROSS_A),--swap=$(RUNS)/demo/model:a_to_b:$(clip)) \
		$(foreach clip,$(CROSS_B),--swap=$(RUNS)/demo/model:b_to_a:$(clip))
	$(BIN)/python -m faceswap_tf.detect --flagfile=flags/detect.flags --data_dir=$(RUNS)/detect/data \
		--model_dir=$(RUNS)/detect/model --test_identities=extra_man_hoodie,extra_man_glasses \
		--calibration_identities=man_blue_shirt
	$(BIN)/python -m faceswap_tf.detect.export --model_dir=$(RUNS)/detect/model --name=detector
	if [ -f $(RUNS)/demo/swapped_a.mp4 ]; then $(BIN)/python -m faceswap_tf.detect.score --model=export/detector \
		--input=$(RUNS)/demo/swapped_a.mp4 --report=$(RUNS)/detect/swapped_a.json \
		--plot=$(RUNS)/detect/swapped_a.png --overlay=$(RUNS)/detect/swapped_a_scored.mp4 --min_face_size=160; fi
	$(BIN)/python -m faceswap_tf.detect.score --model=export/detector --input=$(VIDEO_A) \
		--report=$(RUNS)/detect/original_a.json --plot=$(RUNS)/detect/original_a.png --min_face_size=160
	$(foreach clip,$(STRANGERS),$(BIN)/python -m faceswap_tf.detect.score --model=export/detector \
		--input=$(clip) --report=$(RUNS)/detect/real_$(notdir $(basename $(clip))).json &&) true

lint: $(BIN)/.installed
	$(BIN)/ruff check faceswap_tf tests tools

# Two pytest workers (the machine's cores), a test file to each at a time: the suite is mostly
# TensorFlow starting up and dlib and ffmpeg working in other processes (14.8 against 8.3 min).
TEST_WORKERS ?= 2
test: lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

bench: $(BIN)/.installed
	$(BIN)/python tools/bench

clean:
	rm -rf $(RUNS) .pytest_cache .ruff_cache
