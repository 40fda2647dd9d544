"""TensorFlow's start-up noise kept out of the user's terminal.

Importing TensorFlow prints, from C++ and before any setting can stop it (TF_CPP_MIN_LOG_LEVEL
does not reach these lines), a dozen lines a user cannot act on: oneDNN's notice, the CUDA
probe's "could not find cuda drivers" and "failed call to cuInit" on a machine without a GPU,
the CPU-instruction notice. `install()` routes the process's standard error (file descriptor 2,
where C++ writes) through a filter thread that drops exactly those lines and passes every
other one on at once, so real warnings and errors still show. Python's own `sys.stderr` is
pointed straight at the terminal, so progress lines keep redrawing in place.

The entry points call `install()` as they start (`faceswap_tf.app` does it on import, before
TensorFlow is imported) and `release(verbose)` once their flags are parsed: that makes
TensorFlow probe its devices (the last of the start-up lines), shows the lines held back if
`--verbosity=1` (`-v 1`) asked for them, and gives file descriptor 2 back to the terminal, so
nothing TensorFlow says later, a fatal error included, passes through the filter. TensorFlow's
Python logger is also kept to warnings (it reports every checkpoint and SavedModel written).
An entry point that imports TensorFlow only when it needs it, after its flags are parsed
(convert loads it for a local model or a run record, not for TF Serving's REST API), gets the
same filtering for that import: `release` leaves a hook on `sys.meta_path` that runs the first
import of `tensorflow` and its device probe through the filter, then gives fd 2 back again.
"""

import atexit
import importlib.util
import logging
import multiprocessing
import os
import re
import sys
import threading

NOISE = re.compile(
    rb"All log messages before absl::InitializeLog\(\) is called"
    rb"|oneDNN custom operations are on"
    rb"|Could not find cuda drivers on your machine"
    rb"|failed call to cuInit"
    rb"|cpu_feature_guard\.cc"
    rb"|To enable the following instructions: .* in other operations, rebuild TensorFlow"
    rb"|Unable to register cu(DNN|FFT|BLAS) factory"
    rb"|TF-TRT Warning: Could not find TensorRT"
)

_filter = None


class _Filter:
    def __init__(self):
        self.terminal = os.dup(2)
        read, write = os.pipe()
        os.dup2(write, 2)
        os.close(write)
        self.read = read
        self.held: list[bytes] = []
        self.verbose: bool | None = None  # None: not decided yet, noise is held back
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._pump, name="stderr-filter", daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(self.read, 65536)
            except OSError:
                break
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                self._line(line + b"\n")
        if pending:
            self._line(pending)

    def _line(self, line: bytes) -> None:
        with self.lock:
            if NOISE.search(line) and not self.verbose:
                if self.verbose is None:
                    self.held.append(line)
                return
            os.write(self.terminal, line)

    def release(self, verbose: bool) -> None:
        with self.lock:
            self.verbose = verbose
            if verbose:
                os.write(self.terminal, b"".join(self.held))
            self.held = []

    def close(self) -> None:
        if self.read is None:
            return
        sys.stderr.flush()
        os.dup2(self.terminal, 2)  # closes the pipe's last writer here: the thread sees its end
        self.thread.join(timeout=2.0)
        os.close(self.read)
        self.read = None
        if not self.thread.is_alive():  # its copy of the terminal: nothing writes to it any more
            os.close(self.terminal)


def install() -> None:
    """Filters fd 2 from now on; does nothing in a test run, a worker process, or twice."""
    global _filter
    if _filter is not None or "pytest" in sys.modules or multiprocessing.parent_process() is not None:
        return
    if "tensorflow" in sys.modules:  # too late: its start-up lines are out
        return
    sys.stderr.flush()
    _filter = _Filter()
    # Python writes to the terminal itself: in order with its own output, and a terminal
    # still looks like one (progress lines redraw in place).
    sys.stderr = open(os.dup(_filter.terminal), "w", buffering=1, encoding=sys.stderr.encoding,
                      errors="backslashreplace")
    atexit.register(_filter.close)


def release(verbose: bool) -> None:
    """Ends the filtering: the held-back lines are shown if `verbose`, else dropped."""
    # TensorFlow's Python logger says INFO about each checkpoint and SavedModel it writes, and
    # its checkpoint saver says it again through absl's ("Sharding callback duration").
    logging.getLogger("tensorflow").setLevel(logging.DEBUG if verbose else logging.WARNING)
    if not verbose:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.WARNING)
    if _filter is None:
        return
    if "tensorflow" in sys.modules:
        sys.modules["tensorflow"].config.list_physical_devices()  # the CUDA probe logs here
    elif not verbose:
        sys.meta_path.insert(0, _QuietImport())
    _filter.release(verbose)
    _filter.close()


class _QuietImport:
    """A meta path finder for the first import of `tensorflow` after `release`: it hands the
    import machinery TensorFlow's own spec with its loader wrapped in `_QuietLoader`, and
    leaves `sys.meta_path`."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader:
    """TensorFlow's loader, its module run and its devices probed with fd 2 filtered."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        sys.stderr.flush()
        window = _Filter()
        window.release(False)  # drops the start-up lines, passes any other on at once
        try:
            self.loader.exec_module(module)
            module.config.list_physical_devices()
        finally:
            window.close()

    def __getattr__(self, name):  # get_resource_reader, is_package, ...: TensorFlow's loader's
        return getattr(self.loader, name)
