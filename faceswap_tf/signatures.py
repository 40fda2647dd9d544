"""What an exported swapper promises: its signatures and its metadata, the one definition.

The exporter builds its module from this; the converter's backends (a local SavedModel, TF
Serving over REST or gRPC) check a model against it and read its metadata through
`SwapperMetadata`. Nothing here imports TensorFlow, so a client can read and check a model's
promise without it.

Signatures (inputs -> outputs, as TF Serving names them):
- `serving_default`: `faces` uint8 [N, S, S, 3], aligned RGB crops framed as the model's
  faces were (`framing`) -> `swapped` uint8 [N, S, S, 3] (the mask-blended composite), `mask`
  float32 [N, S, S, 1] in [0, 1] and `rgb` uint8 [N, S, S, 3] (the raw decoder output);
- `swap_image_bytes`: `image_bytes` string [N] (PNG or JPEG crops of S x S) ->
  `swapped_bytes` and `mask_bytes` string [N] (PNG); TF Serving's REST API carries these as
  base64 (`{"b64": ...}`), the `_bytes` suffix telling it to;
- `metadata`: `request` int32 scalar (ignored: TF Serving refuses a signature without inputs)
  -> `json`, the `SwapperMetadata` document, also stored as the asset `faceswap_tf.json`.

An exported detector (`DETECTOR`) keeps the same shape of promise:
- `serving_default`: `faces` uint8 [N, S, S, 3], aligned crops framed as `framing` says ->
  `probability` float32 [N] (that each face is swapped) and `mask` float32 [N, M, M, 1], the
  predicted blend mask over the detector's view (zeros for a detector without a mask head);
- `score_image_bytes`: `image_bytes` string [N] (PNG or JPEG crops of S x S) -> `probability`;
- `metadata`: as the swapper's, the `DetectorMetadata` document.
"""

import dataclasses
import json

from faceswap_tf.errors import UserError, brief
from faceswap_tf.framing import Framing

FORMAT = "faceswap_tf.swapper"
FORMAT_VERSION = 1
ASSET_NAME = "faceswap_tf.json"
DIRECTIONS = {"a_to_b": ("a", "b"), "b_to_a": ("b", "a")}
SYNTHETIC_NOTICE = "Outputs of this model are synthetic media and must be labelled as such."

# name -> ({input: dtype}, {outputs}), dtypes as TF Serving's metadata API spells them.
SIGNATURES = {
    "serving_default": ({"faces": "DT_UINT8"}, {"swapped", "mask", "rgb"}),
    "swap_image_bytes": ({"image_bytes": "DT_STRING"}, {"swapped_bytes", "mask_bytes"}),
    "metadata": ({"request": "DT_INT32"}, {"json"}),
}


DETECTOR_FORMAT = "faceswap_tf.detector"
DETECTOR_SIGNATURES = {
    "serving_default": ({"faces": "DT_UINT8"}, {"probability", "mask"}),
    "score_image_bytes": ({"image_bytes": "DT_STRING"}, {"probability"}),
    "metadata": ({"request": "DT_INT32"}, {"json"}),
}
ANALYSIS_NOTICE = ("Scores of this model are an automated analysis: a probability that a face was swapped, "
                   "not proof either way.")


class ContractError(UserError):
    """A model that does not keep this contract: not a faceswap_tf swapper, or a broken one."""


def _document(text, where: str, format_name: str, version: int, what: str) -> dict:
    """The parsed metadata document of a model of `format_name`; ContractError otherwise."""
    try:
        document = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        raise ContractError(f"{where}: its metadata is not JSON: not a faceswap_tf {what}") from None
    if not isinstance(document, dict) or document.get("format") != format_name:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise ContractError(f"{where}: not a faceswap_tf {what} (metadata format {found!r})")
    if document.get("format_version") != version:
        raise ContractError(f"{where}: {what} metadata version {document.get('format_version')}; "
                            f"this faceswap_tf reads version {version}")
    return document


@dataclasses.dataclass(frozen=True)
class SwapperMetadata:
    """Everything a converter needs to use an exported swapper, and its provenance."""

    direction: str  # a_to_b: faces of A in, B's face out
    names: dict  # {"a": ..., "b": ...}: the people, named after their source videos
    step: int  # the training step exported
    framing: Framing  # how the input crops are framed (a model's framing)
    template_points: list  # [68][2], the alignment template the crops were fitted to
    fit_weights: list  # [68], the weights of that fit
    compute_dtype: str  # the Keras policy of the exported graph
    model_name: str | None = None
    model_dir: str | None = None
    exported_at: str | None = None
    synthetic_media: str = SYNTHETIC_NOTICE

    @property
    def source(self) -> str:
        return self.names[DIRECTIONS[self.direction][0]]

    @property
    def target(self) -> str:
        return self.names[DIRECTIONS[self.direction][1]]

    def to_json(self) -> str:
        document = {"format": FORMAT, "format_version": FORMAT_VERSION, "direction": self.direction,
                    "source": self.source, "target": self.target, "names": self.names, "step": self.step,
                    # Flat, as version 1 had them and TF Serving clients read them.
                    "crop_size": self.framing.crop_size, "padding": self.framing.padding,
                    "coverage": self.framing.coverage, "resolution": self.framing.resolution,
                    "template": self.framing.template, "template_points": self.template_points,
                    "fit_weights": self.fit_weights, "compute_dtype": self.compute_dtype,
                    "synthetic_media": self.synthetic_media, "model_name": self.model_name,
                    "model_dir": self.model_dir, "exported_at": self.exported_at}
        return json.dumps(document, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text, where: str) -> "SwapperMetadata":
        """Parses and checks a model's metadata document; ContractError naming `where`."""
        document = _document(text, where, FORMAT, FORMAT_VERSION, "swapper")
        try:
            framing = Framing.from_json(document, where)
            metadata = cls(
                direction=str(document["direction"]), names=dict(document["names"]), step=int(document["step"]),
                framing=framing, template_points=[[float(x), float(y)] for x, y in document["template_points"]],
                fit_weights=[float(w) for w in document["fit_weights"]],
                compute_dtype=str(document["compute_dtype"]), model_name=document.get("model_name"),
                model_dir=document.get("model_dir"), exported_at=document.get("exported_at"),
                synthetic_media=str(document.get("synthetic_media", SYNTHETIC_NOTICE)))
        except (KeyError, TypeError, ValueError, UserError) as error:
            raise ContractError(f"{where}: malformed swapper metadata ({brief(error)})") from None
        if (metadata.direction not in DIRECTIONS or len(metadata.template_points) != 68
                or len(metadata.fit_weights) != 68 or metadata.framing.resolution is None
                or set(metadata.names) != {"a", "b"}):
            raise ContractError(f"{where}: malformed swapper metadata (direction, names, template or framing)")
        return metadata


@dataclasses.dataclass(frozen=True)
class DetectorMetadata:
    """Everything a client needs to use an exported detector, and its provenance."""

    step: int
    framing: Framing  # how the input crops are framed, and the detector's view of them
    template_points: list  # [68][2]
    fit_weights: list  # [68]
    threshold: float  # a face scoring at or above it is judged swapped (chosen on validation faces)
    trained_on: list  # the people whose faces (real or swapped) it trained on
    test_identities: list  # the people it was measured on, never trained on
    model_name: str | None = None
    model_dir: str | None = None
    exported_at: str | None = None
    analysis: str = ANALYSIS_NOTICE

    def to_json(self) -> str:
        document = {"format": DETECTOR_FORMAT, "format_version": FORMAT_VERSION,
                    **{k: v for k, v in dataclasses.asdict(self).items() if k != "framing"},
                    "framing": self.framing.to_json()}
        return json.dumps(document, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text, where: str) -> "DetectorMetadata":
        document = _document(text, where, DETECTOR_FORMAT, FORMAT_VERSION, "detector")
        try:
            metadata = cls(
                step=int(document["step"]), framing=Framing.from_json(document["framing"], where),
                template_points=[[float(x), float(y)] for x, y in document["template_points"]],
                fit_weights=[float(w) for w in document["fit_weights"]], threshold=float(document["threshold"]),
                trained_on=[str(n) for n in document["trained_on"]],
                test_identities=[str(n) for n in document["test_identities"]],
                model_name=document.get("model_name"), model_dir=document.get("model_dir"),
                exported_at=document.get("exported_at"),
                analysis=str(document.get("analysis", ANALYSIS_NOTICE)))
        except (KeyError, TypeError, ValueError, UserError) as error:
            raise ContractError(f"{where}: malformed detector metadata ({brief(error)})") from None
        if len(metadata.template_points) != 68 or metadata.framing.resolution is None:
            raise ContractError(f"{where}: malformed detector metadata (template or framing)")
        return metadata


@dataclasses.dataclass(frozen=True)
class Contract:
    """What kind of exported model a client expects: its signatures and its metadata type."""

    what: str
    signatures: dict
    metadata: type


SWAPPER = Contract("swapper", SIGNATURES, SwapperMetadata)
DETECTOR = Contract("detector", DETECTOR_SIGNATURES, DetectorMetadata)


def of_loaded(signature_map) -> dict:
    """name -> ({input: dtype}, {outputs}) of a loaded SavedModel's `.signatures` (read from the
    concrete functions as they are, so this module needs no TensorFlow import)."""
    return {name: ({key: "DT_" + spec.dtype.name.upper()
                    for key, spec in function.structured_input_signature[1].items()},
                   set(function.structured_outputs))
            for name, function in signature_map.items()}


def of_serving_metadata(answer: dict) -> dict:
    """name -> ({input: dtype}, {outputs}) of TF Serving's REST metadata answer; KeyError,
    TypeError or AttributeError if it is not one."""
    return {name: ({key: value.get("dtype") for key, value in spec.get("inputs", {}).items()},
                   set(spec.get("outputs", {})))
            for name, spec in answer["metadata"]["signature_def"]["signature_def"].items()}


def check_signatures(found: dict, where: str, required=None, contract: Contract = SWAPPER) -> None:
    """`found`: name -> ({input: dtype}, {outputs}) of a model's signatures. ContractError for
    the first required signature (all of the contract's by default) missing or of another shape."""
    for name in required or tuple(contract.signatures):
        inputs, outputs = contract.signatures[name]
        if name not in found:
            raise ContractError(f"{where}: the model has no {name} signature (it has "
                                f"{', '.join(sorted(found)) or 'none'}): not a faceswap_tf {contract.what}")
        got_inputs, got_outputs = found[name]
        if dict(got_inputs) != inputs or set(got_outputs) != outputs:
            raise ContractError(f"{where}: signature {name} takes {dict(got_inputs)} and gives "
                                f"{sorted(got_outputs)}; expected {inputs} -> {sorted(outputs)}: "
                                f"not a faceswap_tf {contract.what}")
