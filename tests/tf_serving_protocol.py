"""A loopback HTTP server speaking TensorFlow Serving's documented REST API, for protocol tests.

It runs real SavedModels with TensorFlow, so what the client sends and gets is what TF Serving
would compute; what it imitates is only the HTTP and JSON layer of tensorflow_model_server:

- GET  /v1/models/NAME[/versions/V]            model status
- GET  /v1/models/NAME[/versions/V]/metadata   the signature defs
- POST /v1/models/NAME[/versions/V]:predict    row ("instances" -> "predictions") or
  columnar ("inputs" -> "outputs") requests; {"b64": ...} for binary inputs; outputs whose
  name ends in "_bytes" come back as {"b64": ...}; errors as {"error": "..."} with 400 for
  bad requests, 404 for an unknown model or version, 500 otherwise.

`start_grpc()` adds the gRPC PredictionService.Predict of the same models.
`faults` lets a test make the next requests fail: ("status", code) or ("sleep", seconds); over
gRPC an HTTP code becomes the status TF Serving would give (503: UNAVAILABLE, ...).
"""

import base64
import collections
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2

_PATH = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?(/metadata|:predict)?$")


class NotFound(Exception):
    pass


class ProtocolServer:
    def __init__(self, models: dict[str, dict[int, str]]):
        """models: name -> {version: SavedModel path}."""
        self.models = {name: {v: tf.saved_model.load(p) for v, p in versions.items()}
                       for name, versions in models.items()}
        self.faults = collections.deque()
        self.requests = 0
        self._grpc = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
        if self._grpc is not None:
            self._grpc.stop(grace=None)

    def start_grpc(self) -> str:
        """Serves the same models over TF Serving's gRPC PredictionService; returns host:port."""
        if self._grpc is not None:
            return self._grpc_target
        from concurrent import futures

        import grpc
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

        outer = self

        class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
            def Predict(self, request, context):
                outer.requests += 1
                if outer.faults:
                    kind, value = outer.faults.popleft()
                    if kind == "sleep":
                        time.sleep(value)
                    else:
                        context.abort(_GRPC_STATUS[value](grpc), f"injected failure {value}")
                spec = request.model_spec
                status, message = None, ""
                try:
                    version = spec.version.value if spec.HasField("version") else None
                    _, model = outer._model(spec.name, version)
                    name = spec.signature_name or "serving_default"
                    if name not in model.signatures:
                        raise ValueError(f'Serving signature name: "{name}" not found in signature def')
                    inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
                    outputs = model.signatures[name](**inputs)
                except NotFound as error:
                    status, message = grpc.StatusCode.NOT_FOUND, str(error)
                except (ValueError, TypeError, tf.errors.InvalidArgumentError) as error:
                    status, message = grpc.StatusCode.INVALID_ARGUMENT, _status_message(error)
                if status is not None:
                    context.abort(status, message)
                response = predict_pb2.PredictResponse()
                for key, value in outputs.items():
                    response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
                return response

        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Servicer(), self._grpc)
        port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()
        self._grpc_target = f"127.0.0.1:{port}"
        return self._grpc_target

    def _model(self, name, version):
        versions = self.models.get(name)
        if not versions:
            raise NotFound(f"Servable not found for request: Latest({name})")
        if version is None:
            return max(versions), versions[max(versions)]
        if int(version) not in versions:
            raise NotFound(f"Servable not found for request: Specific({name}, {version})")
        return int(version), versions[int(version)]

    def _metadata(self, name, version):
        number, model = self._model(name, version)
        signatures = {}
        for key, function in model.signatures.items():
            inputs = function.structured_input_signature[1]
            outputs = function.structured_outputs
            signatures[key] = {
                "inputs": {k: _tensor_info(spec) for k, spec in inputs.items()},
                "outputs": {k: _tensor_info(spec) for k, spec in outputs.items()},
                "method_name": "tensorflow/serving/predict",
            }
        return {"model_spec": {"name": name, "signature_name": "", "version": str(number)},
                "metadata": {"signature_def": {"signature_def": signatures}}}

    def _predict(self, name, version, body):
        _, model = self._model(name, version)
        signature_name = body.get("signature_name", "serving_default")
        if signature_name not in model.signatures:
            raise ValueError(f'Serving signature name: "{signature_name}" not found in signature def')
        function = model.signatures[signature_name]
        specs = function.structured_input_signature[1]
        row = "instances" in body
        if row == ("inputs" in body):
            raise ValueError("JSON Value: must have one of 'instances' or 'inputs'")
        if row:
            instances = body["instances"]
            if len(specs) == 1:
                (key,) = specs
                columns = {key: [_decode(v) for v in instances]}
            else:
                columns = {key: [_decode(item[key]) for item in instances] for key in specs}
        else:
            given = body["inputs"]
            named = isinstance(given, dict) and set(given) == set(specs)
            columns = given if named else {next(iter(specs)): given}
            columns = {k: _decode_nested(v) for k, v in columns.items()}
        if set(columns) != set(specs):
            raise ValueError(f"input size does not match signature: expected {sorted(specs)}")
        tensors = {k: tf.constant(np.array(columns[k]) if specs[k].dtype != tf.string else columns[k],
                                  dtype=specs[k].dtype) for k in specs}
        outputs = {k: v.numpy() for k, v in function(**tensors).items()}
        if row:
            count = len(next(iter(outputs.values())))
            rows = [{k: _encode(k, v[i]) for k, v in outputs.items()} for i in range(count)]
            return {"predictions": [r[next(iter(r))] for r in rows] if len(outputs) == 1 else rows}
        encoded = {k: _encode(k, v) for k, v in outputs.items()}
        return {"outputs": next(iter(encoded.values())) if len(encoded) == 1 else encoded}

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, code, document):
                payload = json.dumps(document).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (the timeout tests)

            def _serve(self, method):
                server.requests += 1
                if server.faults:
                    kind, value = server.faults.popleft()
                    if kind == "sleep":
                        time.sleep(value)
                    else:
                        return self._answer(value, {"error": f"injected failure {value}"})
                match = _PATH.match(self.path)
                if not match:
                    return self._answer(404, {"error": f"Malformed request: {method} {self.path}"})
                name, version, action = match.groups()
                try:
                    if method == "GET" and action is None:
                        number, _ = server._model(name, version)
                        return self._answer(200, {"model_version_status": [{
                            "version": str(number), "state": "AVAILABLE",
                            "status": {"error_code": "OK", "error_message": ""}}]})
                    if method == "GET" and action == "/metadata":
                        return self._answer(200, server._metadata(name, version))
                    if method == "POST" and action == ":predict":
                        length = int(self.headers.get("Content-Length", 0))
                        body = json.loads(self.rfile.read(length))
                        return self._answer(200, server._predict(name, version, body))
                    return self._answer(404, {"error": f"Malformed request: {method} {self.path}"})
                except NotFound as error:
                    return self._answer(404, {"error": str(error)})
                except (ValueError, KeyError, TypeError, tf.errors.InvalidArgumentError) as error:
                    return self._answer(400, {"error": _status_message(error)})
                except Exception as error:  # what the server would call an internal error
                    return self._answer(500, {"error": str(error).splitlines()[0]})

            def do_GET(self):
                self._serve("GET")

            def do_POST(self):
                self._serve("POST")

        return Handler


_GRPC_STATUS = {503: lambda grpc: grpc.StatusCode.UNAVAILABLE,
                429: lambda grpc: grpc.StatusCode.RESOURCE_EXHAUSTED,
                500: lambda grpc: grpc.StatusCode.INTERNAL,
                400: lambda grpc: grpc.StatusCode.INVALID_ARGUMENT}


def _status_message(error) -> str:
    """The op's own message, as the C++ server reports it (without Python's preamble)."""
    message = getattr(error, "message", None) or str(error)
    skip = ("Graph execution error:", "Detected at node", "<stack traces unavailable>")
    return "\n".join(line for line in message.splitlines() if line.strip() and not line.startswith(skip))


def _tensor_info(spec):
    shape = spec.shape
    info = {"dtype": types_pb2.DataType.Name(spec.dtype.as_datatype_enum),
            "name": getattr(spec, "name", "") or ""}
    if shape.rank is None:
        info["tensor_shape"] = {"dim": [], "unknown_rank": True}
    else:
        info["tensor_shape"] = {"dim": [{"size": str(-1 if d is None else d), "name": ""} for d in shape],
                                "unknown_rank": False}
    return info


def _decode(value):
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    return value


def _decode_nested(value):
    if isinstance(value, list):
        return [_decode_nested(v) for v in value]
    return _decode(value)


def _encode(name, value):
    if name.endswith("_bytes"):
        if isinstance(value, np.ndarray):
            return [_encode(name, v) for v in value]
        return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, np.ndarray):
        return value.tolist() if value.dtype != object else [v.decode() for v in value.ravel()]
    if isinstance(value, bytes):
        return value.decode()
    return value.item() if hasattr(value, "item") else value
