"""Where an exported swapper runs for the converter: in this process, or behind TensorFlow
Serving.

Every backend checks the model against the export contract (`signatures.py`), has `metadata`
(its `SwapperMetadata`: framing, template, names, provenance) and `swap(faces)`: uint8
[N, S, S, 3] aligned crops -> (swapped uint8 [N, S, S, 3], mask float32 [N, S, S, 1]). The
mask comes in steps of 1/255 from every backend, as a PNG carries it over REST, so a
conversion gives the same frames wherever the model runs.

- `LocalSavedModel(path)`: export/NAME (its newest version) or export/NAME/VERSION.
- `RestServing(url)`: TF Serving's REST predict API, `swap_image_bytes` with base64 PNGs;
  timeouts, bounded retries with exponential backoff on connection errors, timeouts and 5xx
  answers, and one clear error for anything else.
- `GrpcServing(target, name)`: TF Serving's gRPC PredictionService (`serving_default` with
  uint8 tensors), with the same timeouts and bounded retries; needs the
  `tensorflow-serving-api` package.

A local SavedModel is code that runs in this process: one whose signatures read or write
files, print or call back into Python is refused before it runs, but load only models you
trust (a SavedModel's restore can run code of its own as it loads).
"""

import base64
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request

import cv2
import numpy as np

from faceswap_tf import signatures
from faceswap_tf.errors import UserError, brief
from faceswap_tf.signatures import SwapperMetadata


class ServingError(UserError):
    """A model server that cannot be reached, answers with an error, or serves another model."""


def _quantise_mask(mask: np.ndarray) -> np.ndarray:
    return (np.round(np.clip(mask, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def resolve_version(path: str) -> str:
    """export/NAME -> its newest numbered version; export/NAME/VERSION as it is."""
    if not os.path.isdir(path):
        raise UserError(f"{path}: no such exported model")
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    numbered = sorted((int(entry) for entry in os.listdir(path) if entry.isdigit()), reverse=True)
    for version in numbered:
        candidate = os.path.join(path, str(version))
        if os.path.exists(os.path.join(candidate, "saved_model.pb")):
            return candidate
    raise UserError(f"{path}: no SavedModel version in it (run faceswap_tf.export)")


class LocalSavedModel:
    """The SavedModel loaded into this process: a swapper, or with `contract` another kind of
    exported model (`signatures.DETECTOR`), checked the same way."""

    def __init__(self, path: str, contract: signatures.Contract = signatures.SWAPPER):
        import tensorflow as tf

        self._tf = tf
        self.path = resolve_version(path)
        try:
            self._model = tf.saved_model.load(self.path)
        except (OSError, ValueError, IndexError, RuntimeError, tf.errors.OpError) as error:
            # (a truncated variables file surfaces as an IndexError)
            raise UserError(f"{self.path}: not a loadable SavedModel ({brief(error)})") from None
        signatures.check_signatures(signatures.of_loaded(self._model.signatures), self.path, contract=contract)
        reaching_out = sorted(filter(_UNSAFE_OP.search, _ops(self._model.signatures)))
        if reaching_out:
            raise signatures.ContractError(
                f"{self.path}: its signatures run {', '.join(reaching_out)}, which reach outside the model "
                f"(files, the console); a {contract.what} needs none of them: not run (load only models you "
                "trust)")
        try:
            document = self._model.signatures["metadata"](request=tf.constant(0, tf.int32))["json"]
        except tf.errors.OpError as error:
            raise UserError(f"{self.path}: its metadata signature fails ({brief(error)})") from None
        self.metadata = contract.metadata.from_json(document.numpy().decode(), self.path)
        self.description = f"{self.path} (local)"

    def call(self, signature: str, **inputs) -> dict:
        """One signature on numpy inputs; numpy outputs."""
        out = self._model.signatures[signature](**{k: self._tf.constant(v) for k, v in inputs.items()})
        return {key: value.numpy() for key, value in out.items()}

    def swap(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self._model.signatures["serving_default"](faces=self._tf.constant(faces, self._tf.uint8))
        return out["swapped"].numpy(), _quantise_mask(out["mask"].numpy())


# Ops that read or write files, print, write summaries or debug dumps, or call back into
# Python: none is in a swapper's graph. A SavedModel is code; one whose signatures hold such
# an op (a crafted `metadata` that writes a file) is refused before any of them runs.
_UNSAFE_OP = re.compile(
    r"File|Save|Restore|Print|Summary|Debug|PyFunc|Record|Reader|Dataset|Checkpoint|Sql|LMDB|Event")


def _ops(signature_map) -> set:
    """Every op type the signatures' graphs and the functions they call hold."""
    found = set()
    for function in signature_map.values():
        graph = function.graph.as_graph_def()
        found |= {node.op for node in graph.node}
        for called in graph.library.function:
            found |= {node.op for node in called.node_def}
    return found


class RestServing:
    """A model behind TF Serving's REST API: http://HOST:PORT/v1/models/NAME[/versions/V]."""

    def __init__(self, url: str, timeout: float = 30.0, retries: int = 3, backoff: float = 0.5):
        match = re.match(r"^(https?://[^/]+)/v1/models/([^/:]+)(?:/versions/(\d+))?/?$", url)
        if not match:
            raise UserError(f"--serving_url={url}: expected http://HOST:PORT/v1/models/NAME[/versions/N]")
        self.base = url.rstrip("/")
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self._check_signatures(self._request("GET", self.base + "/metadata"))
        answer = self._request("POST", self.base + ":predict",
                               {"signature_name": "metadata", "inputs": {"request": 0}})
        document = answer.get("outputs")
        if isinstance(document, dict):
            document = document.get("json")
        if not isinstance(document, str):
            raise ServingError(f"{self.base}: the metadata signature answered {str(answer)[:200]}")
        self.metadata = SwapperMetadata.from_json(document, self.base)
        self.description = self.base

    def swap(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        instances = []
        for face in faces:
            bgr = cv2.cvtColor(face, cv2.COLOR_RGB2BGR)
            ok, png = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
            instances.append({"b64": base64.b64encode(png.tobytes()).decode()})
        answer = self._request("POST", self.base + ":predict",
                               {"signature_name": "swap_image_bytes", "instances": instances})
        predictions = answer.get("predictions")
        if not isinstance(predictions, list) or len(predictions) != len(faces):
            raise ServingError(f"{self.base}: expected {len(faces)} predictions, got {str(answer)[:200]}")
        swapped, masks = [], []
        for prediction in predictions:
            swapped.append(cv2.cvtColor(_decode_png(prediction, "swapped_bytes", self.base), cv2.COLOR_BGR2RGB))
            masks.append(_decode_png(prediction, "mask_bytes", self.base, grey=True))
        mask = np.stack(masks)[..., None].astype(np.float32) / 255.0
        return np.stack(swapped), mask

    def _check_signatures(self, answer: dict):
        try:
            found = signatures.of_serving_metadata(answer)
        except (KeyError, TypeError, AttributeError):
            raise ServingError(f"{self.base}/metadata: not a TF Serving model metadata answer") from None
        # REST calls only these two; serving_default is gRPC's.
        signatures.check_signatures(found, self.base, required=("swap_image_bytes", "metadata"))

    def _request(self, method: str, url: str, body: dict | None = None) -> dict:
        """One call with bounded retries; returns the decoded JSON answer."""
        payload = json.dumps(body).encode() if body is not None else None
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(url, data=payload, method=method,
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as error:
                message = _error_message(error)
                if error.code < 500:
                    raise ServingError(f"{url}: HTTP {error.code}: {message}") from None
                problem = f"HTTP {error.code}: {message}"
            except TimeoutError:
                problem = f"no answer within {self.timeout:g} s"
            except urllib.error.URLError as error:
                if isinstance(error.reason, TimeoutError):
                    problem = f"no answer within {self.timeout:g} s"
                else:
                    problem = f"cannot connect ({error.reason})"
            except (ConnectionError, ValueError) as error:
                problem = f"broken answer ({error})"
        raise ServingError(f"{url}: {problem}, after {self.retries + 1} tries")


def _error_message(error: urllib.error.HTTPError) -> str:
    try:
        message = str(json.loads(error.read()).get("error", "")).strip()
        return message.splitlines()[0] if message else str(error.reason)
    except (ValueError, AttributeError, OSError):
        return str(error.reason)


def _decode_png(prediction, key: str, where: str, grey: bool = False) -> np.ndarray:
    try:
        data = base64.b64decode(prediction[key]["b64"])
    except (KeyError, TypeError, ValueError):
        raise ServingError(f"{where}: prediction without a base64 {key}") from None
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
    if image is None:
        raise ServingError(f"{where}: {key} is not a PNG")
    return image


class GrpcServing:
    """A model behind TF Serving's gRPC API (host:port), called with uint8 tensors."""

    def __init__(self, target: str, name: str, version: int | None = None, timeout: float = 30.0,
                 retries: int = 3, backoff: float = 0.5):
        try:
            import grpc
            import tensorflow as tf
            from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
        except ImportError:
            raise UserError("gRPC needs the tensorflow-serving-api package: pip install "
                            "tensorflow-serving-api (or use the REST --serving_url)") from None
        self._tf, self._grpc, self._predict_pb2 = tf, grpc, predict_pb2
        self.target, self.name, self.version, self.timeout = target, name, version, timeout
        self.retries, self.backoff = retries, backoff
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(target))
        answer = self._call("metadata", {"request": tf.constant(0, tf.int32)})
        document = tf.make_ndarray(answer["json"]).item().decode()
        self.metadata = SwapperMetadata.from_json(document, self.description)

    @property
    def description(self) -> str:
        return f"grpc://{self.target}/{self.name}" + (f"/versions/{self.version}" if self.version else "")

    def swap(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        answer = self._call("serving_default", {"faces": self._tf.constant(faces, self._tf.uint8)})
        swapped = self._tf.make_ndarray(answer["swapped"])
        return swapped, _quantise_mask(self._tf.make_ndarray(answer["mask"]))

    def _call(self, signature: str, inputs: dict) -> dict:
        request = self._predict_pb2.PredictRequest()
        request.model_spec.name = self.name
        request.model_spec.signature_name = signature
        if self.version:
            request.model_spec.version.value = self.version
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(self._tf.make_tensor_proto(value))
        # As over REST: a server that is down, overloaded or slow is tried again, with backoff;
        # an answer that the request is wrong is not.
        again = (self._grpc.StatusCode.UNAVAILABLE, self._grpc.StatusCode.DEADLINE_EXCEEDED,
                 self._grpc.StatusCode.RESOURCE_EXHAUSTED)
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                return self._stub.Predict(request, timeout=self.timeout).outputs
            except self._grpc.RpcError as error:
                code = error.code()
                if code not in again:
                    raise ServingError(f"{self.description}: {code.name}: {error.details()}") from None
                problem = (f"no answer within {self.timeout:g} s" if code == again[1]
                           else f"{code.name}: {error.details()}")
        raise ServingError(f"{self.description}: {problem}, after {self.retries + 1} tries")


def connect(model: str | None = None, serving_url: str | None = None, timeout: float = 30.0,
            retries: int = 3):
    """The backend for tools/convert's --model or --serving_url (grpc://HOST:PORT/NAME)."""
    if serving_url:
        parsed = urllib.parse.urlparse(serving_url)
        if parsed.scheme == "grpc":
            parts = parsed.path.strip("/").split("/")
            pinned = len(parts) == 3 and parts[1] == "versions" and parts[2].isdigit()
            version = int(parts[2]) if pinned else None
            if not parts[0] or (len(parts) > 1 and version is None):
                raise UserError(f"--serving_url={serving_url}: expected grpc://HOST:PORT/NAME[/versions/N]")
            return GrpcServing(parsed.netloc, parts[0], version, timeout=timeout, retries=retries)
        return RestServing(serving_url, timeout=timeout, retries=retries)
    if not model:
        raise UserError("give --model=export/NAME[/VERSION] or --serving_url=...")
    return LocalSavedModel(model)
