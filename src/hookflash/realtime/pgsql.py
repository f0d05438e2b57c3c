"""res_config_pgsql: realtime from PostgreSQL (``res_pgsql.conf``), with asyncpg.

``res_pgsql.conf``::

    [general]
    dbhost = 127.0.0.1        ; also "hostname"; without it: the unix socket directory dbsock
    dbport = 5432             ; also "port"
    dbname = asterisk         ; the database when extconfig.conf's database field is empty
    dbuser = asterisk         ; also "user"
    dbpass = secret           ; also "password"
    dbsock = /tmp             ; socket directory, used when there is no dbhost (Asterisk default)
    requirements = warn       ; warn | createclose | createchar (what "require" does)
    ; hookflash:
    timeout = 2               ; seconds for a connect and for every statement
    pool = 4                  ; connections per database

extconfig.conf's database field is the database name (as Asterisk's ``pgsql_reconnect(database)``
does), so ``sippeers => pgsql,asterisk,sippeers`` logs in to database ``asterisk``; each
database gets its own small pool of connections with the ``[general]`` credentials.

Queries. Only the table's real columns are ever named in SQL: the driver reads each table's
columns from the catalog once (``pg_attribute``; a reload or a ``require`` that alters the
table reads them again) and refuses a lookup on a column the table does not have
(RealtimeError, as Asterisk), while ``update``/``store`` skip such columns with a notice (as
Asterisk: chan_sip writes ``regserver`` or ``path`` whether the table has them or not). Names
are quoted from the catalog's own spelling, table names must be identifiers (``schema.table``
allowed), and every value is a parameter, sent as text and cast to the column's type
(``$1::text::integer``), so ``'5060'`` matches an INTEGER column and comparisons (``>``,
``<``...) follow the column's type, not text order. ``LIKE``/``NOT LIKE`` compare the column as
text with ``ESCAPE '\\'``. Values come back as PostgreSQL's text output (``t``/``f`` for
booleans, as Asterisk's PQgetvalue). As in Asterisk a value is split at ``;`` (each piece
stripped, ``^3B``-style escapes decoded, empty pieces and NULL columns left out; not for
``fullcontact``, ``path``, ``useragent`` and ``md5secret``, which hookflash writes with ``;``
in them). ``load`` returns the first row, ``load_multi`` all rows ordered by the first lookup
column (at most 10,000). ``update``/``update2``/``store``/``destroy`` return the row count of
UPDATE/INSERT/DELETE; an empty value written to a non-text column is NULL. ``require``
checks the table has the columns: ``warn`` logs and answers False, ``createclose`` adds
missing columns with the closest type (and creates a missing table), ``createchar`` adds them
as VARCHAR(size) (Asterisk uses CHAR, whose blank padding would come back in every value).

Failures: refused or dropped connections, a connect or statement that takes longer than
``timeout`` (a frozen server), "the database system is starting up/shutting down" and "too
many connections" raise DriverUnavailable (the layer fails over). A refused login, a missing
database or table and any other SQL error raise RealtimeError. A connection whose statement
was interrupted is closed at once (never reused in an unknown state); one that turns out to
be dead when taken from the pool is replaced and the statement retried once.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from hookflash.conf.parser import ConfigFile
from hookflash.realtime.driver import (
    DriverUnavailable,
    Fields,
    RealtimeDriver,
    RealtimeError,
    Record,
    check_column,
    format_duration,
    split_op,
)

log = logging.getLogger("hookflash.realtime.pgsql")



__all__ = ["PgSettings", "PgsqlDriver", "decode_value", "format_duration", "parse_settings"]

MAX_ROWS = 10_000
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")  # Asterisk's tables have "call-limit"
_NO_SPLIT = frozenset({"md5secret", "fullcontact", "path", "useragent"})
_TEXT_TYPES = ("text", "character varying", "character", "name", "citext", "bpchar", "varchar")
_CHUNK = re.compile(r"\^([0-9A-Fa-f]{2})")


@dataclass(slots=True)
class PgSettings:
    host: str = ""
    port: int = 5432
    dbname: str = "asterisk"
    user: str = "asterisk"
    password: str = "asterisk"
    sock: str = "/tmp"
    requirements: str = "warn"
    timeout: float = 2.0
    pool: int = 4

    @property
    def address(self) -> str:
        return self.host or self.sock


def parse_settings(conf: ConfigFile | None) -> PgSettings:
    s = PgSettings()
    if conf is None:
        return s
    for section in conf.sections_named("general"):
        if section.is_template:
            continue
        for var in section.variables:
            key, value = var.name.strip().lower(), var.value.strip()
            if key in ("dbhost", "hostname"):
                s.host = value
            elif key in ("dbport", "port"):
                if not value.isdigit() or not 0 < int(value) < 65536:
                    raise var.error(f"{key} '{value}' is not a TCP port", f"'{key} = 5432'")
                s.port = int(value)
            elif key == "dbname":
                s.dbname = value
            elif key in ("dbuser", "user"):
                s.user = value
            elif key in ("dbpass", "password"):
                s.password = var.value
            elif key == "dbsock":
                s.sock = value
            elif key == "requirements":
                if value.lower() not in ("warn", "createclose", "createchar"):
                    raise var.error(f"requirements '{value}' is not known",
                                    "'requirements = warn', 'createclose' or 'createchar'")
                s.requirements = value.lower()
            elif key == "timeout":
                try:
                    s.timeout = float(value)
                except ValueError:
                    s.timeout = -1
                if not 0 < s.timeout <= 300:
                    raise var.error(f"timeout '{value}' is not a number of seconds", "'timeout = 2'")
            elif key == "pool":
                if not value.isdigit() or not 1 <= int(value) <= 64:
                    raise var.error(f"pool '{value}' is not a number of connections from 1 to 64", "'pool = 4'")
                s.pool = int(value)
            else:
                log.warning("%s:%d: unknown res_pgsql.conf option '%s' ignored", var.filename, var.lineno, var.name)
    return s


def decode_value(column: str, value: str) -> list[str]:
    """A column's text as Asterisk's realtime_pgsql hands it on: split at ';', stripped,
    ``^XX`` decoded, empty pieces dropped (not split for the columns in _NO_SPLIT)."""
    pieces = [value] if column.lower() in _NO_SPLIT else value.split(";")
    out = []
    for piece in pieces:
        piece = _CHUNK.sub(lambda m: chr(int(m[1], 16)), piece.strip())
        if piece:
            out.append(piece)
    return out




def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table_sql(table: str) -> str:
    parts = table.split(".")
    if len(parts) > 2:
        raise RealtimeError(f"invalid table name {table!r}")
    return ".".join(_quote(check_column(p)) for p in parts)


@dataclass(frozen=True, slots=True)
class _Column:
    name: str
    type: str  # format_type without modifier: "integer", "character varying", "yes_no_values"
    size: int  # character length limit, -1 when none

    @property
    def is_text(self) -> bool:
        return self.type in _TEXT_TYPES


@dataclass(slots=True)
class _Table:
    columns: dict[str, _Column] = field(default_factory=dict)  # exact name -> column

    def find(self, name: str) -> _Column | None:
        found = self.columns.get(name)
        if found is None:
            for col in self.columns.values():
                if col.name.lower() == name.lower():
                    return col
        return found


class _Pool:
    """A few asyncpg connections for one database, used one statement at a time."""

    def __init__(self, connect: Callable[[], Awaitable[Any]], size: int) -> None:
        self.connect = connect
        self.idle: list[Any] = []
        self.slots = asyncio.Semaphore(size)
        self.busy = 0

    async def run(self, op: Callable[[Any], Awaitable[Any]], is_dead: Callable[[BaseException], bool]) -> Any:
        async with self.slots:
            for attempt in (0, 1):
                conn = None
                while self.idle and conn is None:
                    conn = self.idle.pop()
                    if conn.is_closed():
                        conn = None
                fresh = conn is None
                if conn is None:
                    conn = await self.connect()
                self.busy += 1
                try:
                    result = await op(conn)
                except BaseException as exc:
                    import asyncpg
                    if (isinstance(exc, (asyncpg.PostgresError, RealtimeError)) and not is_dead(exc)
                            and not isinstance(exc, DriverUnavailable) and not conn.is_closed()):
                        self.idle.append(conn)  # an SQL error or a refused request: the session is fine
                        raise
                    conn.terminate()  # interrupted or broken: never reuse a session in an unknown state
                    if attempt == 0 and not fresh and is_dead(exc) and not isinstance(exc, (TimeoutError,
                                                                                            asyncio.CancelledError)):
                        continue  # the idle connection had died (restart, idle kill): retry once
                    raise
                finally:
                    self.busy -= 1
                self.idle.append(conn)
                return result
        raise AssertionError("unreachable")

    def close(self) -> None:
        for conn in self.idle:
            conn.terminate()
        self.idle.clear()


class PgsqlDriver(RealtimeDriver):
    name = "pgsql"
    config_file = "res_pgsql.conf"

    def __init__(self, pbx: Any) -> None:
        super().__init__(pbx)
        self.settings = PgSettings()
        self.pools: dict[str, _Pool] = {}
        self.tables: dict[tuple[str, str], _Table] = {}
        self.connected_since: float | None = None

    async def start(self) -> None:
        conf = self.pbx.read_config(self.config_file)
        self.settings = parse_settings(conf)
        await self.stop()
        if conf is not None and self.settings.dbname:
            # connect at load, as Asterisk does, without waiting for it: the console's
            # status is right from the start and a wrong password is logged at once
            self._warmup = asyncio.ensure_future(self._warm())

    async def _warm(self) -> None:
        try:
            await self._run("", lambda conn: conn.fetchval("SELECT 1"))
        except RealtimeError as exc:
            log.warning("PostgreSQL RealTime: cannot connect at load: %s", exc)

    async def stop(self) -> None:
        warmup = getattr(self, "_warmup", None)
        if warmup is not None and not warmup.done():
            warmup.cancel()
        for pool in self.pools.values():
            pool.close()
        self.pools.clear()
        self.tables.clear()
        self.connected_since = None

    # -- connections ------------------------------------------------------------------------------

    def _pool(self, database: str) -> _Pool:
        dbname = database.strip() or self.settings.dbname
        pool = self.pools.get(dbname)
        if pool is None:
            async def connect() -> Any:
                import asyncpg
                s = self.settings
                conn = await asyncpg.connect(host=s.address, port=s.port, user=s.user, password=s.password,
                                             database=dbname, timeout=s.timeout, command_timeout=s.timeout)
                if self.connected_since is None:
                    self.connected_since = time.time()
                return conn
            pool = self.pools[dbname] = _Pool(connect, self.settings.pool)
        return pool

    @staticmethod
    def _is_dead(exc: BaseException) -> bool:
        import asyncpg
        return isinstance(exc, (OSError, TimeoutError, asyncio.TimeoutError, asyncpg.PostgresConnectionError,
                                asyncpg.InterfaceError, asyncpg.exceptions.CannotConnectNowError,
                                asyncpg.exceptions.AdminShutdownError, asyncpg.exceptions.CrashShutdownError,
                                asyncpg.exceptions.TooManyConnectionsError, ConnectionError, EOFError))

    async def _run(self, database: str, op: Callable[[Any], Awaitable[Any]]) -> Any:
        import asyncpg
        s = self.settings
        where = f"{database or s.dbname}@{s.address}:{s.port}"
        try:
            async with asyncio.timeout(s.timeout):
                return await self._pool(database).run(op, self._is_dead)
        except (TimeoutError, asyncio.TimeoutError):
            self.connected_since = None
            raise DriverUnavailable(f"pgsql {where} did not answer within {s.timeout:g} s") from None
        except RealtimeError:
            raise
        except asyncpg.PostgresError as exc:
            if self._is_dead(exc):
                self.connected_since = None
                raise DriverUnavailable(f"pgsql {where}: {exc}") from None
            raise RealtimeError(f"pgsql {where}: {exc}") from None
        except Exception as exc:
            if self._is_dead(exc):
                self.connected_since = None
                raise DriverUnavailable(f"pgsql {where}: {exc}") from None
            raise RealtimeError(f"pgsql {where}: {exc}") from None

    async def _table(self, conn: Any, database: str, table: str, *, required: bool = True) -> _Table:
        key = (database.strip() or self.settings.dbname, table.lower())
        found = self.tables.get(key)
        if found is None:
            rows = await conn.fetch(
                "SELECT a.attname, format_type(a.atttypid, NULL), "
                "CASE WHEN a.atttypid IN (1042, 1043) AND a.atttypmod > 4 THEN a.atttypmod - 4 ELSE -1 END "
                "FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 "
                "AND NOT a.attisdropped ORDER BY a.attnum", _table_sql(table))
            found = _Table({r[0]: _Column(r[0], r[1], r[2]) for r in rows})
            if found.columns:
                self.tables[key] = found
        if required and not found.columns:
            raise RealtimeError(f"pgsql: table '{table}' does not exist in database '{key[0]}'")
        return found

    # -- SQL building ----------------------------------------------------------------------------------

    @staticmethod
    def _where(tbl: _Table, table: str, fields: Fields, params: list[str]) -> str:
        clauses = []
        for name, value in fields:
            column, op = split_op(name)
            if not _COLUMN.match(column):
                raise RealtimeError(f"invalid column name {column!r}")
            col = tbl.find(column)
            if col is None:
                raise RealtimeError(f"Realtime lookup on column '{column}' in table '{table}', which does not exist")
            if "\x00" in value:
                log.warning("pgsql realtime: refused a lookup value containing a NUL character")
                raise RealtimeError(f"value for {column} contains a NUL character")
            params.append(value)
            n = len(params)
            if op in ("LIKE", "NOT LIKE"):
                clauses.append(f"{_quote(col.name)}::text {op} ${n}::text ESCAPE '\\'")
            else:
                sql_op = "<>" if op in ("!=", "<>") else op
                clauses.append(f"{_quote(col.name)} {sql_op} ${n}::text::{col.type}")
        return (" WHERE " + " AND ".join(clauses)) if clauses else ""

    @staticmethod
    def _values(tbl: _Table, table: str, fields: Fields, params: list[str | None]) -> list[tuple[_Column, str]]:
        """(column, placeholder) for the fields the table has; the others skipped with a notice."""
        out: list[tuple[_Column, str]] = []
        seen: set[str] = set()
        for name, value in fields:
            column, _ = split_op(name)
            col = tbl.find(column) if _COLUMN.match(column) else None
            if col is None:
                log.info(
                    "Attempted to write column '%s' in table '%s', but column does not exist!", column, table)
                continue
            if col.name in seen:  # a repeated column: Asterisk's last one wins
                out = [(c, p) for c, p in out if c.name != col.name]
            seen.add(col.name)
            if "\x00" in value:
                raise RealtimeError(f"value for {column} contains a NUL character")
            params.append(None if value == "" and not col.is_text else value)
            out.append((col, f"${len(params)}::text::{col.type}"))
        return out

    @staticmethod
    def _count(status: str) -> int:
        try:
            return int(status.split()[-1])
        except (ValueError, IndexError):
            return 0

    # -- the API ------------------------------------------------------------------------------------------

    async def load(self, database: str, table: str, fields: Fields) -> Record:
        rows = await self._select(database, table, fields, 1)
        return rows[0] if rows else []

    async def load_multi(self, database: str, table: str, fields: Fields) -> list[Record]:
        return await self._select(database, table, fields, MAX_ROWS + 1)

    async def _select(self, database: str, table: str, fields: Fields, limit: int) -> list[Record]:
        tsql = _table_sql(table)

        async def op(conn: Any) -> list[Record]:
            tbl = await self._table(conn, database, table)
            params: list[str] = []
            where = self._where(tbl, table, fields, params)
            cols = list(tbl.columns.values())
            select = ", ".join(f"{_quote(c.name)}::text" for c in cols)
            order = ""
            if fields:
                first = tbl.find(split_op(fields[0][0])[0])
                if first is not None:
                    order = f" ORDER BY {_quote(first.name)}"
            rows = await conn.fetch(f"SELECT {select} FROM {tsql}{where}{order} LIMIT {limit}", *params)
            if len(rows) > MAX_ROWS:
                log.warning("pgsql realtime: more than %d rows in '%s' match; the rest ignored", MAX_ROWS, table)
                rows = rows[:MAX_ROWS]
            out = []
            for row in rows:
                record: Record = []
                for col, value in zip(cols, row, strict=True):
                    if value is not None:
                        record.extend((col.name, piece) for piece in decode_value(col.name, value))
                out.append(record)
            return out

        return await self._run(database, op)  # type: ignore[no-any-return]

    async def update2(self, database: str, table: str, lookup: Fields, fields: Fields) -> int:
        tsql = _table_sql(table)
        if not lookup:
            raise RealtimeError("update needs at least one lookup field")

        async def op(conn: Any) -> int:
            tbl = await self._table(conn, database, table)
            params: list[Any] = []
            sets = self._values(tbl, table, fields, params)
            if not sets:
                return 0
            where = self._where(tbl, table, lookup, params)
            assignments = ", ".join(f"{_quote(c.name)} = {p}" for c, p in sets)
            return self._count(await conn.execute(f"UPDATE {tsql} SET {assignments}{where}", *params))

        return await self._run(database, op)  # type: ignore[no-any-return]

    async def store(self, database: str, table: str, fields: Fields) -> int:
        tsql = _table_sql(table)

        async def op(conn: Any) -> int:
            tbl = await self._table(conn, database, table)
            params: list[Any] = []
            values = self._values(tbl, table, fields, params)
            if not values:
                raise RealtimeError(f"store into '{table}': none of the fields is a column of the table")
            names = ", ".join(_quote(c.name) for c, _ in values)
            marks = ", ".join(p for _, p in values)
            return self._count(await conn.execute(f"INSERT INTO {tsql} ({names}) VALUES ({marks})", *params))

        return await self._run(database, op)  # type: ignore[no-any-return]

    async def destroy(self, database: str, table: str, keyfield: str, entity: str, fields: Fields) -> int:
        tsql = _table_sql(table)
        if not keyfield or not entity:
            raise RealtimeError("destroy needs a key field and a value")

        async def op(conn: Any) -> int:
            tbl = await self._table(conn, database, table)
            params: list[str] = []
            where = self._where(tbl, table, [(keyfield, entity), *fields], params)
            return self._count(await conn.execute(f"DELETE FROM {tsql}{where}", *params))

        return await self._run(database, op)  # type: ignore[no-any-return]

    async def require(self, database: str, table: str, columns: list[tuple[str, str, int]]) -> bool:
        tsql = _table_sql(table)
        mode = self.settings.requirements
        key = (database.strip() or self.settings.dbname, table.lower())

        def sql_type(kind: str, size: int) -> str:
            k = kind.lower()
            if mode == "createchar" or k in ("char", "text", "string", ""):
                return f"VARCHAR({size if size > 0 else 80})"
            if k.startswith("uint") or (k.startswith("int") and size > 4):
                return "BIGINT"
            if k.startswith("int"):
                return "SMALLINT" if 0 < size <= 2 else "INTEGER"
            if k.startswith("float") or k in ("double", "decimal"):
                return "DOUBLE PRECISION"
            if k == "date":
                return "DATE"
            if k in ("datetime", "timestamp"):
                return "TIMESTAMP"
            return f"VARCHAR({size if size > 0 else 80})"

        async def op(conn: Any) -> bool:
            tbl = await self._table(conn, database, table, required=False)
            missing = []
            for name, kind, size in columns:
                if not _COLUMN.match(name):
                    raise RealtimeError(f"invalid column name {name!r}")
                col = tbl.find(name)
                if col is None:
                    missing.append((name, kind, size))
                elif col.size >= 0 and size > col.size:
                    log.warning("Realtime table %s@%s: column '%s' may not be large enough for the required "
                                "data length: %d (detected length: %d)", table, key[0], name, size, col.size)
            if not missing:
                return True
            if mode == "warn":
                for name, kind, size in missing:
                    log.warning("Table %s requires column '%s' of size '%d' (%s), but no such column exists.",
                                table, name, size, kind)
                return False
            defs = [f"{_quote(name)} {sql_type(kind, size)}" for name, kind, size in missing]
            if not tbl.columns:
                await conn.execute(f"CREATE TABLE {tsql} ({', '.join(defs)})")
            else:
                for d in defs:
                    await conn.execute(f"ALTER TABLE {tsql} ADD COLUMN {d}")
            self.tables.pop(key, None)
            return True

        return await self._run(database, op)  # type: ignore[no-any-return]

    def status(self) -> str:
        s = self.settings
        if s.host:
            where = f"{s.dbname}@{s.host}, port {s.port}"
        else:
            where = f"{s.dbname} on socket file {s.sock}"
        who = f" with username {s.user}" if s.user else ""
        alive = any(p.busy or any(not c.is_closed() for c in p.idle) for p in self.pools.values())
        if self.connected_since is None or not alive:
            return f"Unable to connect {where}{who}\n"
        return f"Connected to {where}{who} for {format_duration(int(time.time() - self.connected_since))}\n"
