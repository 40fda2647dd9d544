"""Bad inputs, as a hostile but fair user would give them, each through the stage's library
entry (what the absl entry point calls once its flags are parsed): every one must end in a
`UserError` of one line naming what is wrong, which the entry points print as `error: ...`
with exit code 2, never a traceback, and must leave the inputs as they were.

The CLI half of that promise (a UserError becomes one line and exit 2) is tested per entry
point in its own module; here each kind of bad input is tried once, in this process."""

import dataclasses
import io
import json
import os
import shutil

import pytest

from faceswap_tf import data, exporter, models, run_record, runtime, trainer
from faceswap_tf.convert import backends, converter
from faceswap_tf.errors import UserError
from faceswap_tf.faces import alignments
from tests.conftest import data_path, tiny_config
from tests.test_files import unwritable_folder


@dataclasses.dataclass
class Inputs:
    tmp: object  # pathlib.Path of this case's own folder
    face_dirs: dict
    model: str  # the smoke model (read only: copy it to change it)
    export: str  # the smoke export (read only)
    data: str

    def file(self, name, content: str | bytes = "x"):
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
        return str(path)

    def folder(self, name):
        (self.tmp / name).mkdir(parents=True, exist_ok=True)
        return str(self.tmp / name)

    def faces_copy(self, side="a", change=None):
        """A copy of an extract folder, its alignments records changed by `change(records)`."""
        copy = self.tmp / f"faces_{side}"
        shutil.copytree(self.face_dirs[side], copy)
        if change:
            path = str(copy / alignments.FILE_NAME)
            alignments.save(path, change(alignments.load(path)))
        return str(copy)

    def model_copy(self):
        copy = self.tmp / "model"
        shutil.copytree(self.model, copy)
        return str(copy)

    @property
    def image(self):
        return data_path(self.data, "images", "faces", "obama2.jpg")

    @property
    def clip(self):
        return data_path(self.data, "clips", "identity_a.mp4")


def extract(i, **config):
    from faceswap_tf import extractor

    settings = {"input": i.image, "output_dir": str(i.tmp / "out"), **config}
    return lambda: extractor.run(extractor.ExtractConfig(**settings), log=io.StringIO())


def train(i, faces_a=None, faces_b=None, model_dir=None, **changes):
    def run():
        config = tiny_config({"a": faces_a or i.face_dirs["a"], "b": faces_b or i.face_dirs["b"]},
                             model_dir or str(i.tmp / "model"), **changes)
        trainer.run(config, log=io.StringIO())
    return run


def data_config(i, **changes):
    return lambda: data.DataConfig(i.face_dirs["a"], i.face_dirs["b"], **changes)


def export(i, model_dir=None, **changes):
    settings = {"model_dir": model_dir or i.model, "name": "x", "export_dir": str(i.tmp / "export"), **changes}
    return lambda: exporter.export(exporter.ExportConfig(**settings), log=io.StringIO())


def convert(i, source, output, **changes):
    settings = {"input": source, "output": output, "model": os.path.join(i.export, "smoke"), **changes}
    return lambda: converter.run(converter.ConvertConfig(**settings), log=io.StringIO())


def images(i):
    """A folder holding an image."""
    folder = i.folder("imgs")
    shutil.copy(i.image, folder)
    return folder


def config_json(i, text):
    model = i.model_copy()
    with open(run_record.path_of(model), "w") as out:
        out.write(text)
    return model


def truncated_checkpoints(i):
    model = i.model_copy()
    for name in os.listdir(model):
        if ".data-" in name:
            path = os.path.join(model, name)
            open(path, "r+b").truncate(os.path.getsize(path) // 2)
    return model


def replaced_crop(i):
    def swap_bytes(records):
        first, second = records[0].file, records[1].file
        shutil.copy(i.tmp / "faces_a" / second, i.tmp / "faces_a" / first)
        return records
    return i.faces_copy("a", swap_bytes)


def broken_saved_model(i, damage):
    version = i.tmp / "broken" / "1"
    shutil.copytree(os.path.join(i.export, "smoke", "6"), version)
    damage(version)
    return str(i.tmp / "broken")


def truncate(path, keep=0.5):
    open(path, "r+b").truncate(int(os.path.getsize(path) * keep))


def tf_config(text):
    def run():
        os.environ["TF_CONFIG"] = text
        try:
            runtime.resolve_strategy()
        finally:
            del os.environ["TF_CONFIG"]
    return run


DEEP_JSON = "[" * 200_000 + "]" * 200_000

# (name, the call, text the one-line message must hold)
CASES = [
    # extract
    ("extract: no such input", lambda i: extract(i, input=str(i.tmp / "nope.mp4")), "no such file"),
    ("extract: unsupported file type", lambda i: extract(i, input=i.file("notes.txt")),
     "unsupported file type"),
    ("extract: empty folder", lambda i: extract(i, input=i.folder("empty")), "holds no images or videos"),
    ("extract: empty video file", lambda i: extract(i, input=i.file("empty.mp4", b"")), "the file is empty"),
    ("extract: output_dir is a file", lambda i: extract(i, output_dir=i.file("afile")), "is a file"),
    ("extract: output_dir under a file", lambda i: extract(i, output_dir=i.file("afile") + "/sub"), "is under"),
    ("extract: output_dir read-only", lambda i: extract(i, output_dir=unwritable_folder(i.tmp)),
     "cannot write"),
    ("extract: alignments.json not JSON",
     lambda i: extract(i, output_dir=os.path.dirname(i.file("out/alignments.json", "{"))), "not valid JSON"),
    ("extract: alignments.json nested 200,000 deep",
     lambda i: extract(i, output_dir=os.path.dirname(i.file("out/alignments.json", DEEP_JSON))), "too deep"),
    ("extract: alignments.json of another format",
     lambda i: extract(i, output_dir=os.path.dirname(i.file("out/alignments.json", '{"format": "x"}'))),
     "field format"),
    ("extract: alignments.json is a folder",
     lambda i: extract(i, output_dir=os.path.dirname(i.folder("out/alignments.json"))), "cannot read it"),
    ("extract: --size=8", lambda i: extract(i, size=8), "--size=8"),
    ("extract: --padding=0.6", lambda i: extract(i, padding=0.6), "--padding=0.6"),
    ("extract: --every_nth=0", lambda i: extract(i, every_nth=0), "--every_nth=0"),
    ("extract: --keyframe_interval=0", lambda i: extract(i, keyframe_interval=0), "--keyframe_interval=0"),
    ("extract: --workers=-1", lambda i: extract(i, workers=-1), "--workers=-1"),
    # train
    ("train: faces folder missing", lambda i: train(i, faces_a=str(i.tmp / "nope")), "no alignments.json"),
    ("train: faces folder without alignments", lambda i: train(i, faces_a=i.folder("fa")),
     "no alignments.json"),
    ("train: alignments.json damaged",
     lambda i: train(i, faces_a=os.path.dirname(i.file("fa/alignments.json", "\x89PNG"))), "not valid JSON"),
    ("train: faces of other crop sizes",
     lambda i: train(i, faces_b=i.faces_copy("b", lambda rs: [dataclasses.replace(r, size=128) for r in rs])),
     "different --size or --padding"),
    ("train: a crop missing",
     lambda i: train(i, faces_a=i.faces_copy("a", lambda rs: [dataclasses.replace(rs[0], file="gone.png"),
                                                             *rs[1:]])), "gone.png: missing, unreadable"),
    ("train: a crop replaced by another", lambda i: train(i, faces_a=replaced_crop(i)), "not the crop"),
    ("train: --model_dir is a file", lambda i: train(i, model_dir=i.file("afile")), "is a file"),
    ("train: --model_dir under a file", lambda i: train(i, model_dir=i.file("afile") + "/m"), "is under"),
    ("train: --model_dir read-only", lambda i: train(i, model_dir=unwritable_folder(i.tmp)), "cannot write in"),
    ("train: --model_dir in a read-only folder",
     lambda i: train(i, model_dir=os.path.join(unwritable_folder(i.tmp), "m")), "cannot write in"),
    ("train: --steps=0", lambda i: train(i, steps=0), "--steps=0"),
    ("train: --keep_checkpoints=0", lambda i: train(i, keep_checkpoints=0), "--keep_checkpoints=0"),
    ("train: --eval_every=-1", lambda i: train(i, eval_every=-1), "--eval_every=-1"),
    ("train: --worker_timeout=0", lambda i: train(i, worker_timeout=0), "--worker_timeout=0"),
    ("train: --mixed_precision=float8", lambda i: train(i, mixed_precision="float8"),
     "--mixed_precision=float8"),
    ("train: --xla=maybe", lambda i: train(i, xla="maybe"), "--xla=maybe"),
    ("train: --adversarial=wgan", lambda i: lambda: trainer.LossConfig(adversarial="wgan"),
     "--adversarial=wgan"),
    ("train: --code_adversarial_weight=-1", lambda i: lambda: trainer.LossConfig(code_adversarial_weight=-1.0),
     "--code_adversarial_weight=-1.0: must be 0 or more"),
    ("train: --expression_weight=-1", lambda i: lambda: trainer.LossConfig(expression_weight=-1.0),
     "--expression_weight=-1.0: must be 0 or more"),
    ("train: --batch_size=0", lambda i: data_config(i, batch_size=0), "--batch_size=0"),
    ("train: --holdout=1", lambda i: data_config(i, holdout=1.0), "--holdout=1.0"),
    ("train: --coverage=0.1",
     lambda i: lambda: run_record.RunRecord.for_training(models.ModelConfig(), i.face_dirs["a"],
                                                         i.face_dirs["b"], 0.1, 0.2, 0), "--coverage=0.1"),
    ("train: TF_CONFIG not JSON", lambda i: tf_config("{cluster"), "TF_CONFIG: not a JSON object"),
    ("train: no checkpoint readable",
     lambda i: train(i, model_dir=truncated_checkpoints(i), steps=9), "none of its 2 checkpoints can be used"),
    # export
    ("export: no such model_dir", lambda i: export(i, model_dir=str(i.tmp / "nope")), "no config.json"),
    ("export: model_dir is a file", lambda i: export(i, model_dir=i.file("afile")), "not a folder"),
    ("export: config.json not JSON", lambda i: export(i, model_dir=config_json(i, "{")), "unreadable"),
    ("export: config.json nested 200,000 deep",
     lambda i: export(i, model_dir=config_json(i, DEEP_JSON)), "unreadable"),
    ("export: config.json of another program",
     lambda i: export(i, model_dir=config_json(i, json.dumps({"model": {}}))), "not a faceswap_tf run record"),
    ("export: no checkpoint", lambda i: export(i, model_dir=os.path.dirname(
        shutil.copy(run_record.path_of(i.model), i.folder("m")))), "no checkpoint; train first"),
    ("export: every checkpoint truncated", lambda i: export(i, model_dir=truncated_checkpoints(i)),
     "none of its 2 checkpoints can be used"),
    ("export: --name=../x", lambda i: export(i, name="../x"), "--name=../x"),
    ("export: --version=0", lambda i: export(i, version=0), "--version=0"),
    ("export: --direction=sideways", lambda i: export(i, direction="sideways"), "--direction=sideways"),
    ("export: --mixed_precision=fp8", lambda i: export(i, mixed_precision="fp8"), "--mixed_precision=fp8"),
    ("export: --export_dir is a file", lambda i: export(i, export_dir=i.file("afile")), "a file, not a folder"),
    ("export: --export_dir read-only", lambda i: export(i, export_dir=unwritable_folder(i.tmp)),
     "cannot write"),
    ("export: --version taken", lambda i: export(i, version=int(os.path.basename(i.folder("export/x/6")))),
     "exists; versions are never overwritten"),
    # convert
    ("convert: no such input", lambda i: convert(i, str(i.tmp / "nope.mp4"), i.file("o.mp4")), "no such file"),
    ("convert: unsupported input", lambda i: convert(i, i.file("notes.txt"), str(i.tmp / "o.png")),
     "neither a video nor an image"),
    ("convert: output is the input", lambda i: convert(i, i.file("in.jpg", open(i.image, "rb").read()),
                                                       str(i.tmp / "in.jpg")), "is the input"),
    ("convert: output is the input, spelt otherwise", lambda i: convert(
        i, i.file("in.jpg", open(i.image, "rb").read()), f"{i.folder('d')}/../in.jpg"), "is the input"),
    ("convert: output is a hard link to the input", lambda i: convert(
        i, i.file("in.jpg", open(i.image, "rb").read()),
        (os.link(i.tmp / "in.jpg", i.tmp / "link.jpg"), str(i.tmp / "link.jpg"))[1]), "is the input"),
    ("convert: a folder onto itself", lambda i: convert(i, images(i), str(i.tmp / "imgs")),
     "inside the input folder"),
    ("convert: output inside the input folder", lambda i: convert(i, images(i), str(i.tmp / "imgs/o")),
     "inside the input folder"),
    ("convert: output folder missing", lambda i: convert(i, i.image, str(i.tmp / "nope" / "o.png")),
     "no folder"),
    ("convert: output folder read-only", lambda i: convert(i, i.image, unwritable_folder(i.tmp) + "/o.png"),
     "cannot write in"),
    ("convert: output onto an existing folder", lambda i: convert(i, i.clip, i.folder("o.mp4")), "is a folder"),
    ("convert: a video to an image", lambda i: convert(i, i.clip, str(i.tmp / "o.png")), "a video converts to"),
    ("convert: an image to a video", lambda i: convert(i, i.image, str(i.tmp / "o.mp4")),
     "an image converts to"),
    ("convert: a folder to a file", lambda i: convert(i, i.folder("imgs"), str(i.tmp / "o.png")),
     "give a folder"),
    ("convert: no such model", lambda i: convert(i, i.image, str(i.tmp / "o.png"), model=str(i.tmp / "none")),
     "no such exported model"),
    ("convert: a model without versions", lambda i: convert(i, i.image, str(i.tmp / "o.png"),
                                                            model=i.folder("empty")), "no SavedModel version"),
    ("convert: a SavedModel with truncated variables", lambda i: convert(
        i, i.image, str(i.tmp / "o.png"), model=broken_saved_model(
            i, lambda v: truncate(v / "variables" / "variables.data-00000-of-00001"))),
     "not a loadable SavedModel"),
    ("convert: a SavedModel whose graph is garbage", lambda i: convert(
        i, i.image, str(i.tmp / "o.png"), model=broken_saved_model(
            i, lambda v: (v / "saved_model.pb").write_bytes(b"garbage" * 9))), "not a loadable SavedModel"),
    ("convert: --model and --serving_url", lambda i: convert(i, i.image, "o.png", serving_url="http://h:1/v1"),
     "give one of"),
    ("convert: neither --model nor --serving_url", lambda i: convert(i, i.image, "o.png", model=None),
     "give one of"),
    ("convert: a malformed REST url", lambda i: lambda: backends.connect(serving_url="http://h:1/models/x"),
     "expected http://HOST:PORT/v1/models/NAME"),
    ("convert: a malformed gRPC url", lambda i: lambda: backends.connect(serving_url="grpc://h:1/a/b"),
     "expected grpc://HOST:PORT/NAME"),
    ("convert: no server at the url", lambda i: lambda: backends.RestServing(
        "http://127.0.0.1:9/v1/models/x", timeout=1, retries=0), "cannot connect"),
    ("convert: --crf=99", lambda i: convert(i, i.image, "o.png", crf=99), "--crf=99"),
    ("convert: --erode=0.7", lambda i: convert(i, i.image, "o.png", erode=0.7), "--erode=0.7"),
    ("convert: --batch_size=0", lambda i: convert(i, i.image, "o.png", batch_size=0), "--batch_size=0"),
    ("convert: --end before --start", lambda i: convert(i, i.clip, "o.mp4", start=2.0, end=1.0), "--end=1.0"),
    ("convert: --smoothing=-1", lambda i: convert(i, i.clip, "o.mp4", smoothing=-1.0), "--smoothing=-1.0"),
    ("convert: a range without frames", lambda i: convert(i, i.clip, str(i.tmp / "o.mp4"), start=60.0),
     "no frames in the range"),
    ("convert: a video that is text", lambda i: convert(i, i.file("t.mp4", "not a video\n" * 9),
                                                       str(i.tmp / "o.mp4")), "cannot read the video"),
]


@pytest.fixture
def inputs(tmp_path, face_dirs, smoke_model, smoke_export, data_dir):
    return Inputs(tmp_path, face_dirs, smoke_model, smoke_export, data_dir)


def state(inputs: Inputs) -> dict:
    """Every file of the shared inputs (faces, model, export), with its size and times."""
    out = {}
    for folder in [*inputs.face_dirs.values(), inputs.model, inputs.export]:
        for root, _, names in os.walk(folder):
            for name in names:
                info = os.stat(os.path.join(root, name))
                out[os.path.join(root, name)] = (info.st_size, info.st_mtime_ns, info.st_ctime_ns)
    return out


@pytest.mark.parametrize("name, make, expected", CASES, ids=[case[0] for case in CASES])
def test_a_bad_input_is_one_clear_line_and_changes_nothing(inputs, name, make, expected):
    before = state(inputs)
    with pytest.raises(UserError) as raised:
        make(inputs)()
    message = str(raised.value)
    assert expected in message, message
    assert message and "\n" not in message and len(message) < 400, message
    assert state(inputs) == before
