"""The one exception type for mistakes a user can fix (bad path, bad checkpoint, bad flag).

The CLI prints `error: <message>` for these and exits with status 2; anything else is a bug
and keeps its traceback (shown with --debug)."""


class HRMEvalError(Exception):
    """A user-facing error: the message is one line that says what is wrong and where."""
