"""Errors that are the user's to fix: the command line prints them on one line and exits 2."""


class SmaError(Exception):
    """A bad input or an unavailable resource, with a message that says what to do."""
