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


def test_unreachable_tasks_names_the_workers_whose_port_is_closed():
    import socket
    import types

    import tensorflow as tf
    listening, closed = socket.socket(), socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    closed.bind(("127.0.0.1", 0))
    ports = [listening.getsockname()[1], closed.getsockname()[1]]
    closed.close()  # a killed worker: its port no longer accepts
    try:
        spec = tf.train.ClusterSpec({"worker": ["127.0.0.1:1", *(f"127.0.0.1:{p}" for p in ports)]})
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(spec, task_type="worker", task_id=0)
        strategy = types.SimpleNamespace(cluster_resolver=resolver)
        assert runtime.unreachable_tasks(strategy) == ["/job:worker/replica:0/task:2"]  # itself not probed
    finally:
        listening.close()
    assert runtime.unreachable_tasks(runtime.resolve_strategy()) == []  # no cluster
