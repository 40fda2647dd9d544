"""Writing files: atomically (a path never holds a partial file, whatever stops the run), with
the user's umask, into folders checked up front; and telling a dead run's leftovers from a
live one's."""

import os
import tempfile

from faceswap_tf.errors import UserError


def write_atomic(path: str, content: str | bytes) -> None:
    """Writes `content` to a hidden temporary file beside `path`, flushes it to disk and
    renames it over `path`; on any failure the temporary file is removed and `path` is left
    as it was. The file gets the mode a new file gets from `open` (0666 less the umask), not
    the private 0600 of a temporary file: a TF Serving or a colleague running as another
    user can read what the umask lets them."""
    folder, name = os.path.split(os.path.abspath(path))
    handle, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "wb" if isinstance(content, bytes) else "w") as out:
            out.write(content)
            out.flush()
            os.fchmod(out.fileno(), new_file_mode())
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def new_file_mode() -> int:
    """0666 less the process's umask: what `open(path, "w")` creates."""
    return 0o666 & ~umask()


def umask() -> int:
    """The process's umask, read without changing it where Linux shows it (setting it to read
    it back would race with other threads creating files)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask



def check_folder(path: str, flag: str, value: str | None = None) -> None:
    """UserError (one line, `flag`=`value`, the path by default) unless `path` is a folder
    this process can write in, or one it can create: found out by making (and removing) a
    file there, or in the nearest parent that exists, before any work is done."""
    path = os.path.abspath(path)
    flag = f"{flag}={value or path}"
    probe = path
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        where = "is a file" if probe == path else f"is under {probe}, a file"
        raise UserError(f"{flag}: {where}, not a folder")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as error:
        raise UserError(f"{flag}: cannot write in {probe} ({error.strerror})") from None


def make_folder(path: str, flag: str) -> None:
    """`os.makedirs(path, exist_ok=True)`, with a one-line UserError for what stops it."""
    check_folder(path, flag)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise UserError(f"{flag}={path}: cannot create the folder ({error.strerror})") from None


def process_alive(pid: int) -> bool:
    """Whether a process `pid` exists (a temporary file named after it is still in use)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
