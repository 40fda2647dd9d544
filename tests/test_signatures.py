"""The exported model's contract: readable without TensorFlow, checked on every read."""

import json
import subprocess
import sys

import pytest

from faceswap_tf import signatures
from faceswap_tf.faces import align
from faceswap_tf.framing import Framing
from faceswap_tf.signatures import ContractError, SwapperMetadata
from tests.conftest import ROOT


def metadata(**changes):
    fields = dict(direction="a_to_b", names={"a": "anna", "b": "bea"}, step=12,
                  framing=Framing(256, 0.2, 0.85, 64), template_points=align.TEMPLATE_68.tolist(),
                  fit_weights=align.FIT_WEIGHTS.tolist(), compute_dtype="float32", model_name="m")
    return SwapperMetadata(**{**fields, **changes})


def test_metadata_round_trips_and_names_source_and_target():
    made = metadata()
    read = SwapperMetadata.from_json(made.to_json(), "here")
    assert read == made and (read.source, read.target) == ("anna", "bea")
    flat = json.loads(made.to_json())  # as version 1 clients read it
    assert flat["crop_size"] == 256 and flat["coverage"] == 0.85 and flat["format"] == signatures.FORMAT


@pytest.mark.parametrize("text, message", [
    ("not json", "here: its metadata is not JSON"),
    ('{"format": "other"}', "here: not a faceswap_tf swapper .*'other'"),
    ("[1, 2]", "here: not a faceswap_tf swapper"),
    ('{"format": "faceswap_tf.swapper", "format_version": 9}', "metadata version 9"),
    ('{"format": "faceswap_tf.swapper", "format_version": 1, "direction": "a_to_b"}', "malformed"),
])
def test_bad_metadata_is_one_clear_error(text, message):
    with pytest.raises(ContractError, match=message):
        SwapperMetadata.from_json(text, "here")


def test_signatures_are_checked_by_name_and_shape():
    good = {name: spec for name, spec in signatures.SIGNATURES.items()}
    signatures.check_signatures(good, "m")
    with pytest.raises(ContractError, match="m: the model has no metadata signature"):
        signatures.check_signatures({k: v for k, v in good.items() if k != "metadata"}, "m")
    with pytest.raises(ContractError, match="signature serving_default takes"):
        signatures.check_signatures({**good, "serving_default": ({"faces": "DT_FLOAT"}, {"swapped"})}, "m")


def test_the_contract_reads_without_tensorflow():
    code = ("import sys; from faceswap_tf import signatures; "
            "assert 'tensorflow' not in sys.modules, 'imported tensorflow'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
