"""The one exception type that reaches the user as a single line, never a traceback."""

import re


class UserError(Exception):
    """A problem with the user's input or flags; the message names the file and the problem."""

    exit_at_once = False  # leave the process without TensorFlow's teardown (see WorkerLost)


class WorkerLost(UserError):
    """A worker of a multi-worker run stopped answering. The process leaves right after its
    line: with the cluster's collectives aborted, TensorFlow's teardown of the distributed
    input pipeline waits on its threads for 5-46 s (measured on this machine, 2026-12-02), and
    the run has nothing left to write (checkpoints are written then renamed)."""

    exit_at_once = True


def brief(error: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, cut to `limit` characters: enough to name
    the problem in a one-line error without a library's traceback-sized text."""
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    # TensorFlow puts the op's name first: "{{function_node __wrapped__SaveV2_...}} the message".
    return re.sub(r"^\{\{[^}]*\}\}\s*", "", line)[:limit]
