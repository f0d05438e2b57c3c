"""Verbose and log output, shaped like Asterisk's console.

``verbose(level, text)`` prints with Asterisk's prefixes (level 1 ``" "``, 2 ``"  == "``,
3 ``"    -- "``, 4 and up ``"       > "``) when the console's verbosity is at least the
level; level 0 always prints. Log records of WARNING and above (and DEBUG records when
``core set debug`` is on) reach the same sinks as
``[Nov 26 06:30:00] WARNING[1234]: hookflash.dialplan: text``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

PREFIXES = {0: "", 1: " ", 2: "  == ", 3: "    -- "}
OTHER_PREFIX = "       > "

Sink = Callable[[str], None]


def prefix(level: int) -> str:
    return PREFIXES.get(level, OTHER_PREFIX)


class Verbosity:
    """The verbose level and the places output goes (local console, remote consoles, log)."""

    def __init__(self, level: int = 0, debug: int = 0) -> None:
        self.level = level
        self.debug = debug
        self.sinks: list[Sink] = []

    def verbose(self, level: int, text: str) -> None:
        if level > self.level and level != 0:
            return
        line = prefix(level) + text
        for sink in list(self.sinks):
            sink(line)

    def emit(self, line: str) -> None:
        for sink in list(self.sinks):
            sink(line)


class ConsoleLogHandler(logging.Handler):
    """Forwards log records to the console sinks in Asterisk's layout."""

    def __init__(self, verbosity: Verbosity) -> None:
        super().__init__(logging.DEBUG)
        self.verbosity = verbosity

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.WARNING:
            if not (self.verbosity.debug and record.levelno >= logging.DEBUG):
                if record.levelno < logging.INFO or self.verbosity.level < 1:
                    return
        stamp = time.strftime("%b %d %H:%M:%S", time.localtime(record.created))
        level = {logging.WARNING: "WARNING", logging.ERROR: "ERROR",
                 logging.CRITICAL: "ERROR", logging.INFO: "NOTICE"}.get(record.levelno, "DEBUG")
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not break logging
            message = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            # the error itself on the same line; the traceback with "core set debug" on
            exc = record.exc_info[1]
            message += f" ({type(exc).__name__}: {exc})"
            if self.verbosity.debug:
                import traceback  # noqa: PLC0415
                message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        self.verbosity.emit(f"[{stamp}] {level}[{os.getpid()}]: {record.name}: {message}")
