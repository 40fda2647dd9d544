"""Build the detector's dataset: labelled real and swapped faces, with blend masks and provenance.

  python -m faceswap_tf.detect.dataset --pairs=runs/demo/model --output_dir=runs/detect/data
  python -m faceswap_tf.detect.dataset --swap=runs/demo/model:a_to_b:clips/extra_man_hoodie.mp4 ...

Writes DIR/manifest.json (`faceswap_tf/detect/manifest.py` documents it), the crops under
DIR/crops/, the swapped videos (labelled synthetic media) under DIR/videos/. Re-running adds
only the jobs the manifest lacks, so newer models are added cheaply.
"""

import sys

from absl import flags

from faceswap_tf import app
from faceswap_tf.detect import fakes

_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "The dataset folder (created or extended).",
                                  required=True)
_PAIRS = flags.DEFINE_list(
    "pairs", [], "Training runs' model_dirs: each converted both ways, on its own videos' held-out frames.")
_SWAP = flags.DEFINE_multi_string(
    "swap", [], "MODEL:DIRECTION:VIDEO, repeatable: MODEL a model_dir or export/NAME[/VERSION]; a video the "
    "model trained on is converted from its first held-out frame, another video whole (a cross pair).")
_CRFS = flags.DEFINE_list("crfs", ["23", "30", "35"],
                          "H.264 CRF values of the re-encoded copies (empty: none).")
_MAX_FRAMES = flags.DEFINE_integer("max_frames", None, "Frames converted per job, at most.")
_EVERY_NTH = flags.DEFINE_integer("every_nth", 1, "Keep the faces of every Nth converted frame.")
_MIN_FACE_SIZE = flags.DEFINE_integer("min_face_size", 80, "Smallest face to find, in frame pixels.")


def main(argv):
    del argv
    from faceswap_tf.errors import UserError

    try:
        crfs = tuple(int(value) for value in _CRFS.value)
    except ValueError:
        raise UserError(f"--crfs={','.join(_CRFS.value)}: expected integers") from None
    jobs = [job for model_dir in _PAIRS.value for job in fakes.pair_jobs(model_dir)]
    jobs += [fakes.SwapJob.parse(spec) for spec in _SWAP.value]
    config = fakes.DatasetConfig(output_dir=_OUTPUT_DIR.value, jobs=tuple(jobs), crfs=crfs,
                                 max_frames=_MAX_FRAMES.value, every_nth=_EVERY_NTH.value,
                                 min_face_size=_MIN_FACE_SIZE.value)
    found = fakes.build(config, log=sys.stderr)
    print(f"{config.output_dir}: {len(found.faces)} faces from {len(found.jobs)} jobs", file=sys.stderr)


def run():
    """Console entry point `faceswap-detect-data`."""
    app.run(main)


if __name__ == "__main__":
    run()
