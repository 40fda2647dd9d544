"""The one exception type that reaches the user as a single line, never a traceback."""


class UserError(Exception):
    """A problem with the user's input or flags; the message names the file and the problem."""
