"""One vocabulary for precision, XLA and devices."""

import keras
import pytest

from faceswap_tf import runtime
from faceswap_tf.errors import UserError


def test_policy_scope_puts_the_previous_policy_back_even_on_error():
    assert keras.mixed_precision.global_policy().name == "float32"
    with pytest.raises(RuntimeError):
        with runtime.policy_scope("mixed_bfloat16"):
            assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
            raise RuntimeError
    assert keras.mixed_precision.global_policy().name == "float32"


def test_choices_and_what_they_resolve_to():
    assert runtime.resolve_precision("bfloat16") == "mixed_bfloat16"
    assert runtime.compute_dtype("mixed_bfloat16") == "bfloat16"
    assert runtime.compute_dtype("float32") == "float32"
    for bad, message in ((("fp8",), "--mixed_precision=fp8"), (("off", "maybe"), "--xla=maybe")):
        with pytest.raises(UserError, match=message):
            runtime.check_choices(*bad)
    used = runtime.describe(runtime.resolve_strategy(), "float32", False)
    assert used == runtime.Runtime("float32", False, "default", 1) and used.label == "float32, xla off"
