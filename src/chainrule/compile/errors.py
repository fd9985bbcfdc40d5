"""The error cr.compile raises."""

from __future__ import annotations


class CompileError(RuntimeError):
    """The function does something a recorded schedule could not repeat faithfully."""
