"""The swapper backends: local SavedModel, and TF Serving over REST and gRPC.

The REST and gRPC tests are protocol tests: they run against tests/tf_serving_protocol.py, a
loopback server that implements TF Serving's documented wire formats around the same
SavedModel. A real tensorflow_model_server is used too when it is on PATH.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

from faceswap_tf import exporter
from faceswap_tf.convert import backends
from faceswap_tf.signatures import ContractError
from tests.conftest import ROOT
from tests.test_export import aligned_crops
from tests.tf_serving_protocol import ProtocolServer


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def export_dir(smoke_export):
    return smoke_export


@pytest.fixture(scope="module")
def local(export_dir):
    return backends.LocalSavedModel(os.path.join(export_dir, "smoke"))


@pytest.fixture(scope="module")
def server(export_dir):
    with ProtocolServer({"smoke": {6: os.path.join(export_dir, "smoke", "6")}}) as running:
        yield running


@pytest.fixture(scope="module")
def crops(face_dirs):
    return aligned_crops(face_dirs["a"], count=3)


def test_local_backend_takes_the_newest_version(local, export_dir, crops):
    assert local.path == os.path.join(export_dir, "smoke", "6")
    assert local.metadata.framing.crop_size == 256 and local.metadata.step == 6
    swapped, mask = local.swap(crops)
    assert swapped.shape == crops.shape and swapped.dtype == np.uint8
    assert mask.shape == (3, 256, 256, 1) and np.all(np.round(mask * 255) == mask * 255)


def test_protocol_rest_gives_the_local_savedmodels_output(server, local, crops):
    remote = backends.RestServing(f"{server.url}/v1/models/smoke")
    assert remote.metadata == local.metadata
    swapped, mask = remote.swap(crops)
    want_swapped, want_mask = local.swap(crops)
    np.testing.assert_array_equal(swapped, want_swapped)
    np.testing.assert_array_equal(mask, want_mask)
    pinned = backends.RestServing(f"{server.url}/v1/models/smoke/versions/6")
    np.testing.assert_array_equal(pinned.swap(crops[:1])[0], want_swapped[:1])


def test_protocol_rest_retries_server_errors_then_gives_up_clearly(server, crops):
    remote = backends.RestServing(f"{server.url}/v1/models/smoke", retries=2, backoff=0.01)
    server.faults.extend([("status", 503), ("status", 500)])
    before = server.requests
    assert remote.swap(crops[:1])[0].shape == (1, 256, 256, 3)  # third try answers
    assert server.requests - before == 3
    server.faults.extend([("status", 503)] * 3)
    with pytest.raises(backends.ServingError, match=r":predict: HTTP 503: injected failure 503, after 3 tries"):
        remote.swap(crops[:1])
    assert not server.faults


def test_protocol_rest_timeout_is_a_clear_error(server, crops):
    remote = backends.RestServing(f"{server.url}/v1/models/smoke", timeout=0.3, retries=1, backoff=0.01)
    server.faults.extend([("sleep", 1.0), ("sleep", 1.0)])
    with pytest.raises(backends.ServingError, match=r"no answer within 0.3 s, after 2 tries"):
        remote.swap(crops[:1])


def test_protocol_rest_client_errors_are_not_retried(server, crops):
    remote = backends.RestServing(f"{server.url}/v1/models/smoke", retries=3, backoff=0.01)
    before = server.requests
    with pytest.raises(backends.ServingError, match=r"HTTP 400: .*must be a 256x256 aligned face crop"):
        remote.swap(crops[:, :128, :128])
    assert server.requests - before == 1
    with pytest.raises(backends.ServingError, match=r"versions/9/metadata: HTTP 404: Servable not found"):
        backends.RestServing(f"{server.url}/v1/models/smoke/versions/9")
    with pytest.raises(backends.ServingError,
                       match=r"HTTP 404: Servable not found for request: Latest\(nope\)"):
        backends.RestServing(f"{server.url}/v1/models/nope")


def test_protocol_rest_refuses_a_model_that_is_not_a_swapper(tmp_path):
    module = tf.Module()
    module.double = tf.function(lambda x: {"y": 2 * x}, input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "1"), signatures={"serving_default": module.double})
    with ProtocolServer({"other": {1: str(tmp_path / "1")}}) as other:
        with pytest.raises(ContractError, match="has no swap_image_bytes signature .*not a faceswap_tf"):
            backends.RestServing(f"{other.url}/v1/models/other")


def test_rest_unreachable_server_and_bad_urls():
    port = free_port()
    with pytest.raises(backends.ServingError, match=r"cannot connect .* after 2 tries"):
        backends.RestServing(f"http://127.0.0.1:{port}/v1/models/x", retries=1, backoff=0.01)
    with pytest.raises(backends.UserError, match="expected http://HOST:PORT/v1/models/NAME"):
        backends.connect(serving_url="http://127.0.0.1:1/models/x")


def test_protocol_grpc_gives_the_local_savedmodels_output(server, local, crops):
    target = server.start_grpc()
    remote = backends.connect(serving_url=f"grpc://{target}/smoke")
    assert remote.metadata == local.metadata
    swapped, mask = remote.swap(crops)
    want_swapped, want_mask = local.swap(crops)
    np.testing.assert_array_equal(swapped, want_swapped)
    np.testing.assert_array_equal(mask, want_mask)
    with pytest.raises(backends.ServingError, match="NOT_FOUND: Servable not found"):
        backends.connect(serving_url=f"grpc://{target}/smoke/versions/9")


def test_protocol_grpc_retries_unavailable_then_gives_up_clearly(server, crops):
    remote = backends.GrpcServing(server.start_grpc(), "smoke", retries=2, backoff=0.01)
    server.faults.extend([("status", 503), ("status", 429)])
    before = server.requests
    assert remote.swap(crops[:1])[0].shape == (1, 256, 256, 3)  # third try answers
    assert server.requests - before == 3
    server.faults.extend([("status", 503)] * 3)
    with pytest.raises(backends.ServingError, match=r"smoke: UNAVAILABLE: injected failure 503, after 3 tries"):
        remote.swap(crops[:1])
    before = server.requests
    with pytest.raises(backends.ServingError, match="INVALID_ARGUMENT"):  # not retried
        remote.swap(crops[:, :128, :128])
    assert server.requests - before == 1 and not server.faults


def test_protocol_grpc_timeout_is_a_clear_error(server, crops):
    remote = backends.GrpcServing(server.start_grpc(), "smoke", timeout=0.3, retries=1, backoff=0.01)
    server.faults.extend([("sleep", 1.0), ("sleep", 1.0)])
    started = time.monotonic()
    with pytest.raises(backends.ServingError, match=r"/smoke: no answer within 0.3 s, after 2 tries"):
        remote.swap(crops[:1])
    assert time.monotonic() - started < 2.0


def test_a_savedmodel_whose_signatures_reach_outside_is_refused_before_it_runs(local, tmp_path):
    class Crafted(tf.Module):
        """The smoke swapper, with a metadata signature that also writes a file."""

        def __init__(self, swapper, target):
            super().__init__()
            self.swapper = swapper
            meta = swapper.signatures["metadata"](request=tf.constant(0))["json"]
            self.swap = tf.function(lambda faces: swapper.signatures["serving_default"](faces=faces),
                                    input_signature=[tf.TensorSpec([None, 256, 256, 3], tf.uint8, "faces")])
            self.swap_bytes = tf.function(
                lambda image_bytes: swapper.signatures["swap_image_bytes"](image_bytes=image_bytes),
                input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])

            def metadata(request):
                tf.io.write_file(target, "written by a model")
                return {"json": meta}

            self.metadata = tf.function(metadata, input_signature=[tf.TensorSpec([], tf.int32, name="request")])

    target = str(tmp_path / "written")
    crafted = Crafted(tf.saved_model.load(local.path), target)
    tf.saved_model.save(crafted, str(tmp_path / "crafted" / "1"), signatures={
        "serving_default": crafted.swap, "swap_image_bytes": crafted.swap_bytes, "metadata": crafted.metadata})
    with pytest.raises(ContractError, match=r"crafted/1: its signatures run WriteFile, which reach outside"):
        backends.LocalSavedModel(str(tmp_path / "crafted"))
    assert not os.path.exists(target)


def test_a_real_tensorflow_model_server(export_dir, local, crops):
    binary = shutil.which("tensorflow_model_server")
    if binary is None:
        pytest.skip("tensorflow_model_server is not on PATH (tools/serve prints how to get it)")
    port, grpc_port = free_port(), free_port()
    config = exporter.write_models_config(export_dir)
    process = subprocess.Popen([binary, f"--rest_api_port={port}", f"--port={grpc_port}",
                                f"--model_config_file={config}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/smoke", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        remote = backends.RestServing(f"http://127.0.0.1:{port}/v1/models/smoke")
        np.testing.assert_array_equal(remote.swap(crops)[0], local.swap(crops)[0])
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_tools_serve_serves_on_loopback_only_unless_told_to_expose(export_dir):
    command = [sys.executable, os.path.join(ROOT, "tools", "serve"), f"--export_dir={export_dir}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "tensorflow_model_server --port" not in result.stderr  # it would listen on 0.0.0.0
    assert "docker run --rm -p 127.0.0.1:8500:8500 -p 127.0.0.1:8501:8501 " \
        f"-v {export_dir}:/models tensorflow/serving --model_config_file=/models/models.docker.config" \
        in result.stderr
    assert "pass --expose" in result.stderr and "serve only models you trust" in result.stderr
    docker_config = open(os.path.join(export_dir, "models.docker.config")).read()
    assert 'name: "smoke"' in docker_config and 'base_path: "/models/smoke"' in docker_config
    if shutil.which("tensorflow_model_server"):
        return  # with --expose it would start the server
    exposed = subprocess.run([*command, "--expose"], capture_output=True, text=True, timeout=120)
    assert exposed.returncode == 2 and "Traceback" not in exposed.stderr
    assert "tensorflow_model_server --port=8500 --rest_api_port=8501" in exposed.stderr
    assert f"--model_config_file={export_dir}/models.config" in exposed.stderr
    assert "on every network interface" in exposed.stderr
