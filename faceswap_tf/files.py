"""Writing a file so that its path never holds a partial one, whatever stops the run."""

import os
import tempfile


def write_atomic(path: str, content: str | bytes) -> None:
    """Writes `content` to a hidden temporary file beside `path`, flushes it to disk and
    renames it over `path`; on any failure the temporary file is removed and `path` is left
    as it was."""
    folder, name = os.path.split(os.path.abspath(path))
    handle, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "wb" if isinstance(content, bytes) else "w") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
