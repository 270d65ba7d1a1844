"""The project's exceptions: one place, each with the exit code the CLI uses.

Exit codes (documented in the README):
  0 success, 1 internal error, 2 bad input (file missing, unreadable, not an image, too large),
  3 output refused (would overwrite), 4 a tool / model / metric is unavailable, 5 run failed.
"""

from __future__ import annotations


class RestoreGraphError(Exception):
    """Base class: a clear, one-line message for the user."""

    exit_code = 1


class InputError(RestoreGraphError):
    """The input (file, image, argument) is unusable."""

    exit_code = 2


class StoreError(InputError):
    """A file RestoreGraph keeps under its home is damaged, changed or missing: a stored image
    whose pixels no longer match its sha256, or an unreadable checkpoint database. The message
    names the file and how to recover."""


class OutputError(RestoreGraphError):
    """The output cannot be written (it would overwrite the input or an existing file)."""

    exit_code = 3


class MetricUnavailable(RestoreGraphError):
    """A metric needs weights or a package that is not present."""

    exit_code = 4


class ToolError(RestoreGraphError):
    """A restoration tool is unknown, failed, or returned an invalid image."""

    exit_code = 4


class PlanError(RestoreGraphError):
    """A plan could not be parsed or names tools that do not exist."""

    exit_code = 5


class BatchError(RestoreGraphError):
    """A batch finished with failed images, or could not go on (run it again to resume)."""

    exit_code = 5
