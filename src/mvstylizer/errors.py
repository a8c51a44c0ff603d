"""The one exception type that reaches the user as a one-line message."""


class UserError(Exception):
    """A problem with the user's input or environment, reported without a traceback.

    The CLI prints ``error: <message>`` and exits non-zero; anything else that escapes is a bug.
    """


class NotFoundError(UserError):
    """Something the request names (a style id, say) is not known; HTTP maps it to 404."""

    http_status = 404
