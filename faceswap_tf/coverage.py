"""Does B's footage cover what A does? Compare two extracted face sets before training.

  python -m faceswap_tf.coverage --faces_a=runs/demo/faces_a --faces_b=runs/demo/faces_b

Reads only the two alignments files (a second or two), prints the distribution of mouth
opening, eye aperture, yaw and pitch of both sets side by side, and a warning for each way A
goes beyond B's faces: B's decoder can only draw what B's footage shows. With --model_dir,
B's side is the model's training faces (its held-out frames left out). --output also writes
the comparison as Markdown. The same comparison opens the evaluation report.
"""

import os
import sys

from absl import flags

from faceswap_tf import app, files
from faceswap_tf.faces import alignments, coverage

_FACES_A = flags.DEFINE_string("faces_a", None, "Extract folder of A (the person whose face is replaced).",
                               required=True)
_FACES_B = flags.DEFINE_string("faces_b", None, "Extract folder of B (the face put in).", required=True)
_MODEL_DIR = flags.DEFINE_string("model_dir", None, "A training run: compare with B's training faces only.")
_OUTPUT = flags.DEFINE_string("output", None, "Also write the comparison to this Markdown file.")


def main(argv):
    del argv
    b_records = None
    if _MODEL_DIR.value:
        from faceswap_tf import run_record

        record = run_record.read(_MODEL_DIR.value)
        b_records = run_record.split_holdout(
            alignments.load(os.path.join(_FACES_B.value, alignments.FILE_NAME)), record.holdout)[0]
    a = coverage.measure_folder(_FACES_A.value)
    b = coverage.measure_folder(_FACES_B.value, b_records)
    lines = [f"# Does B ({b.name}, {b.faces} faces) cover A ({a.name}, {a.faces} faces)?", "",
             *coverage.markdown(a, b), ""]
    for line in lines:
        print(line, file=sys.stderr)
    if _OUTPUT.value:
        files.write_atomic(_OUTPUT.value, "\n".join(lines))
        print(f"wrote {_OUTPUT.value}", file=sys.stderr)


def run():
    """Console entry point `faceswap-coverage`."""
    app.run(main)


if __name__ == "__main__":
    run()
