"""The ``chainrule`` command: ``chainrule [COMMAND] ...`` (also ``python -m chainrule``).

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; this file only dispatches.  Exit codes: 0 success, 2 bad input.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Optional

from .version import __version__

# name -> (module, one-line help); each module is imported when the parser is built.
COMMANDS: dict[str, tuple[str, str]] = {
    "explain": (
        "chainrule.explain.command",
        "explain an expression: values, the backward pass step by step, gradients",
    ),
    "derive": ("chainrule.explain.derive_command", "the matrix-form backward equations of a small program"),
    "explore": (
        "chainrule.explain.explore",
        "serve the explorer on 127.0.0.1: type an expression, step through forward and backward in a browser",
    ),
    "train": ("chainrule.train", "train an MLP on the bundled digits (or two moons) and save a checkpoint"),
}


def _version() -> str:
    return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chainrule",
        description="Reverse-mode automatic differentiation that shows its work.",
        epilog="With no command, chainrule explains the CS231n sigmoid neuron step by step.",
    )
    parser.add_argument("--version", action="version", version=f"chainrule {_version()}")
    sub = parser.add_subparsers(dest="command")
    for name, (module, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(cmd)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()  # imports every command's module
    except KeyboardInterrupt:  # Ctrl-C during start-up: the shell's status for an interrupted command
        return 130
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad input, 0 on --help
        return int(exc.code or 0)
    try:
        if args.command is None:
            from .explain.command import default_text

            print(default_text())
            code = 0
        else:
            module, _ = COMMANDS[args.command]
            code = int(importlib.import_module(module).run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the try, not at interpreter exit
        return code
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        # point stdout at /dev/null so the flush at exit has nowhere to fail (the recipe in Python's signal docs)
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # stdout without a file descriptor (captured): nothing will flush to a pipe
            pass
        return 0
