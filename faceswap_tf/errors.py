"""The one exception type that reaches the user as a single line, never a traceback."""

import re


class UserError(Exception):
    """A problem with the user's input or flags; the message names the file and the problem."""


def brief(error: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, cut to `limit` characters: enough to name
    the problem in a one-line error without a library's traceback-sized text."""
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    # TensorFlow puts the op's name first: "{{function_node __wrapped__SaveV2_...}} the message".
    return re.sub(r"^\{\{[^}]*\}\}\s*", "", line)[:limit]
