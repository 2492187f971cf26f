"""The one exception type for mistakes a user can fix; its message says what to do."""

from __future__ import annotations


class SoupError(ValueError):
    """Bad input from the user: a wrong file, a mismatched adapter, odd weights.

    The message names what was received, what was expected and what to do.
    The CLI prints it without a traceback; the app shows it as a notification.
    """
