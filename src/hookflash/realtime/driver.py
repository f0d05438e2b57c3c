"""What a realtime driver provides (Asterisk's ``ast_config_engine``), async.

A record is a list of ``(column, value)`` pairs, in the order the backend gave them; a
column may repeat (LDAP multi-valued attributes, Asterisk's ``;``-split values).
Lookup fields are ``(name, value)`` pairs where ``name`` may carry an operator after a
space, as Asterisk's realtime API allows: ``"name LIKE"``, ``"regseconds >"``, ``"port !="``
(the default is ``=``); ``%`` and ``_`` are LIKE wildcards.

A driver raises :class:`DriverUnavailable` when it cannot reach its backend (refused,
timed out, dropped): the realtime layer then tries the next backend of the family
(failover). "Not found" is an empty result, never an exception, and never fails over.
Any other problem (a missing table, a bad mapping) raises :class:`RealtimeError` and
is logged; it does not fail over either.
"""

from __future__ import annotations

import abc
import re
from typing import Any

Record = list[tuple[str, str]]
Fields = list[tuple[str, str]]

__all__ = ["DriverUnavailable", "Fields", "RealtimeDriver", "RealtimeError", "Record", "split_op"]


class RealtimeError(Exception):
    """A realtime operation failed for a reason other than the backend being away."""


class DriverUnavailable(RealtimeError):
    """The backend cannot be reached now: try the next one."""


_OPS = ("NOT LIKE", "LIKE", ">=", "<=", "!=", "<>", ">", "<", "=")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")  # "call-limit" is a real sippeers column


def split_op(name: str) -> tuple[str, str]:
    """``"name LIKE"`` -> (``"name"``, ``"LIKE"``); no operator -> ``"="``."""
    text = name.strip()
    upper = text.upper()
    for op in _OPS:
        if upper.endswith(" " + op):
            return text[: -len(op) - 1].strip(), op
    return text, "="


def format_duration(seconds: int) -> str:
    """Asterisk's ``ast_cli_print_timestr_fromseconds``: "1 hour, 2 minutes, 3 seconds"."""
    units = (("year", 31_536_000), ("week", 604_800), ("day", 86_400), ("hour", 3_600), ("minute", 60))
    seconds = max(0, int(seconds))
    parts = []
    for unit, size in units:
        if seconds > size:  # Asterisk compares with '>': exactly 3600 s prints "60 minutes"
            n, seconds = divmod(seconds, size)
            parts.append(f"{n} {unit}{'' if n == 1 else 's'}")
    if seconds > 0 or not parts:
        parts.append(f"{seconds} second{'' if seconds == 1 else 's'}")
    return ", ".join(parts)


def check_column(name: str) -> str:
    """Column names go into queries: only identifiers (RealtimeError otherwise)."""
    if not _IDENT.match(name):
        raise RealtimeError(f"invalid column name {name!r}")
    return name


class RealtimeDriver(abc.ABC):
    """One backend technology (``ldap``, ``pgsql``, ``sqlite3``) with its own .conf."""

    name: str = ""
    config_file: str = ""

    def __init__(self, pbx: Any) -> None:
        self.pbx = pbx

    async def start(self) -> None:
        """Read the driver's .conf (ConfigError to refuse) and prepare connections lazily."""

    async def stop(self) -> None:
        """Close connections."""

    @abc.abstractmethod
    async def load(self, database: str, table: str, fields: Fields) -> Record:
        """One record (Asterisk's ``realtime`` callback: all matches concatenated for ldap);
        [] when nothing matches."""

    @abc.abstractmethod
    async def load_multi(self, database: str, table: str, fields: Fields) -> list[Record]: ...

    async def update(self, database: str, table: str, keyfield: str, entity: str, fields: Fields) -> int:
        """Rows changed; -1 when the driver cannot update."""
        return await self.update2(database, table, [(keyfield, entity)], fields)

    async def update2(self, database: str, table: str, lookup: Fields, fields: Fields) -> int:
        return -1

    async def store(self, database: str, table: str, fields: Fields) -> int:
        return -1

    async def destroy(self, database: str, table: str, keyfield: str, entity: str, fields: Fields) -> int:
        return -1

    async def require(self, database: str, table: str, columns: list[tuple[str, str, int]]) -> bool:
        """Whether the table has these columns (name, type, size); True when unknown."""
        return True

    def status(self) -> str:
        """``realtime show <driver> status``."""
        return ""
