"""What the command line says about itself: its version and its one-line usage errors."""

from __future__ import annotations

from importlib import metadata

import typer

DISTRIBUTION = "csbridge"


def installed_version() -> str:
    """The installed distribution's version (what pip installed), or `unknown` when csbridge
    runs from a source tree nobody installed."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


def one_line(text: str) -> str:
    """Several lines folded into one, blank ones dropped."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def usage_error_line(error: typer.TyperException) -> str:
    """`usage error: csbridge status: Invalid value for '--duration': ...`: the command as
    typed, what is wrong with it, and where to read more; one line, whatever the error."""
    context = getattr(error, "ctx", None)
    command = getattr(context, "command_path", "") or DISTRIBUTION
    return f"usage error: {command}: {one_line(error.format_message())} (see {command} --help)"
