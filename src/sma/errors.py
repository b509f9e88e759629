"""Errors that are the user's to fix: the command line prints them on one line and exits 2."""

import re


class SmaError(Exception):
    """A bad input or an unavailable resource, with a message that says what to do."""


def phrase_keys(message: str, names: dict[str, str]) -> str:
    """A library message with its `config.key` names replaced by what sets them in a front end (a flag, a field),
    where it has one ("recipe key K" otherwise)."""
    return re.sub(
        r"`([a-z_][a-z0-9_.]*)`", lambda match: names.get(match.group(1), f"recipe key {match.group(1)}"), message
    )
