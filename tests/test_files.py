"""The file writer every stage uses: atomic, with the user's umask; and folders checked first."""

import os
import stat

import pytest

from faceswap_tf import files
from faceswap_tf.errors import UserError


def unwritable_folder(tmp_path):
    """A folder this process cannot create files in: a read-only one, or (for root, whom
    permissions do not stop) one of sysfs, where nobody creates files."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    for candidate in (str(folder), "/sys/kernel"):
        try:
            with open(os.path.join(candidate, ".probe"), "w"):
                pass
            os.remove(os.path.join(candidate, ".probe"))
        except OSError:
            return candidate
    pytest.skip("no folder here refuses this process's writes")


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_take_the_users_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        files.write_atomic(str(tmp_path / "models.config"), "model_config_list {}\n")
        files.write_atomic(str(tmp_path / "crop.png"), b"\x89PNG")
    finally:
        os.umask(previous)
    for name in ("models.config", "crop.png"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == mode, name
    assert sorted(os.listdir(tmp_path)) == ["crop.png", "models.config"]


def test_a_folder_is_checked_before_any_work(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    read_only = unwritable_folder(tmp_path)
    for path, problem in [(afile, "is a file, not a folder"), (afile / "sub", f"is under {afile}, a file"),
                          (read_only, f"cannot write in {read_only}"),
                          (os.path.join(read_only, "new"), f"cannot write in {read_only}")]:
        with pytest.raises(UserError, match=f"--model_dir={path}: {problem}"):
            files.check_folder(str(path), "--model_dir")
    files.check_folder(str(tmp_path / "new" / "deeper"), "--model_dir")  # can be made
    assert not (tmp_path / "new").exists()
