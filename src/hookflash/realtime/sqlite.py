"""res_config_sqlite3: realtime from SQLite, the embedded default (no server to run).

``res_config_sqlite3.conf``: one section per database, named as extconfig.conf's
database field::

    [asterisk]
    dbfile => /var/lib/asterisk/realtime.sqlite3
    requirements => warn          ; warn | createclose | createchar
    batch => 100                  ; accepted (Asterisk batches writes; every write here commits)

A relative ``dbfile`` is in the AstDB directory. Every query runs in one worker thread
per database (SQLite connections are not shared between threads), with parameters for
every value and checked identifiers for every column and table name, so nothing a caller
sends ends up as SQL. With ``requirements=createclose`` or ``createchar``, ``require``
creates missing tables and columns (as text).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sqlite3
from pathlib import Path
from typing import Any

from hookflash.conf import ConfigError
from hookflash.realtime.driver import (
    DriverUnavailable,
    Fields,
    RealtimeDriver,
    RealtimeError,
    Record,
    check_column,
    split_op,
)

log = logging.getLogger("hookflash.realtime.sqlite3")


class _Db:
    def __init__(self, name: str, path: Path, requirements: str) -> None:
        self.name = name
        self.path = path
        self.requirements = requirements
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"rt-sqlite-{name}")
        self.conn: sqlite3.Connection | None = None
        self.waiting = 0

    def connection(self) -> sqlite3.Connection:
        if self.conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(self.path), timeout=1.0, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.row_factory = sqlite3.Row
        return self.conn


def _where(fields: Fields) -> tuple[str, list[str]]:
    clauses, params = [], []
    for name, value in fields:
        column, op = split_op(name)
        check_column(column)
        if op in ("LIKE", "NOT LIKE"):
            clauses.append(f'"{column}" {op} ? ESCAPE \'\\\'')
        else:
            clauses.append(f'"{column}" {"!=" if op == "<>" else op} ?')
        params.append(value)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


class SqliteDriver(RealtimeDriver):
    name = "sqlite3"
    config_file = "res_config_sqlite3.conf"

    def __init__(self, pbx: Any) -> None:
        super().__init__(pbx)
        self.dbs: dict[str, _Db] = {}

    async def start(self) -> None:
        conf = self.pbx.read_config(self.config_file)
        base = Path(getattr(self.pbx.dirs, "astdbdir", ".") or ".")
        dbs: dict[str, _Db] = {}
        if conf is not None:
            for section in conf.sections:
                if section.is_template:
                    continue
                dbfile, requirements = "", "warn"
                for var in section.variables:
                    key = var.name.lower()
                    if key == "dbfile":
                        dbfile = var.value.strip()
                    elif key == "requirements":
                        requirements = var.value.strip().lower()
                        if requirements not in ("warn", "createclose", "createchar"):
                            raise var.error(f"requirements '{var.value}' is not known",
                                            "'requirements => warn', 'createclose' or 'createchar'")
                if not dbfile:
                    first = section.variables[0] if section.variables else None
                    raise ConfigError(first.filename if first else conf.filename, first.lineno if first else 0,
                                      f"database [{section.name}] has no dbfile",
                                      "'dbfile => /path/to/file.sqlite3'")
                path = Path(dbfile) if Path(dbfile).is_absolute() else base / dbfile
                dbs[section.name.lower()] = _Db(section.name, path, requirements)
        self.dbs = dbs

    async def stop(self) -> None:
        for db in self.dbs.values():
            def close(db: _Db = db) -> None:
                if db.conn is not None:
                    db.conn.close()
                    db.conn = None
            await asyncio.get_running_loop().run_in_executor(db.pool, close)
            db.pool.shutdown(wait=False)

    async def _run(self, database: str, fn: Any) -> Any:
        db = self.dbs.get(database.lower())
        if db is None:
            raise RealtimeError(f"no database [{database}] in {self.config_file}")

        if db.waiting >= 256:
            # lookups must not queue for seconds behind a burst of writes: say "busy"
            # (the layer fails over, chan_sip answers 503 and the phone retries)
            raise DriverUnavailable(f"sqlite3 {db.path}: {db.waiting} queries already waiting")

        def work() -> Any:
            try:
                return fn(db.connection())
            except sqlite3.OperationalError as exc:
                text = str(exc)
                if "locked" in text or "unable to open" in text:
                    raise DriverUnavailable(f"sqlite3 {db.path}: {text}") from None
                raise RealtimeError(f"sqlite3 {db.path}: {text}") from None
            except sqlite3.Error as exc:
                raise RealtimeError(f"sqlite3 {db.path}: {exc}") from None

        db.waiting += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(db.pool, work)
        finally:
            db.waiting -= 1

    async def load(self, database: str, table: str, fields: Fields) -> Record:
        rows = await self.load_multi(database, table, fields)
        return rows[0] if rows else []

    async def load_multi(self, database: str, table: str, fields: Fields) -> list[Record]:
        check_column(table)
        where, params = _where(fields)

        def q(conn: sqlite3.Connection) -> list[Record]:
            cur = conn.execute(f'SELECT * FROM "{table}"{where}', params)
            out = []
            for row in cur.fetchmany(10_000):
                out.append([(k, "" if row[k] is None else str(row[k])) for k in row.keys() if row[k] is not None])
            return out

        return await self._run(database, q)  # type: ignore[no-any-return]

    async def update2(self, database: str, table: str, lookup: Fields, fields: Fields) -> int:
        check_column(table)
        where, params = _where(lookup)
        sets = []
        values = []
        for name, value in fields:
            sets.append(f'"{check_column(name)}" = ?')
            values.append(value)
        if not sets:
            return 0

        def q(conn: sqlite3.Connection) -> int:
            return conn.execute(f'UPDATE "{table}" SET {", ".join(sets)}{where}', values + params).rowcount

        return await self._run(database, q)  # type: ignore[no-any-return]

    async def store(self, database: str, table: str, fields: Fields) -> int:
        check_column(table)
        cols = [check_column(n) for n, _ in fields]
        if not cols:
            return 0

        def q(conn: sqlite3.Connection) -> int:
            marks = ", ".join("?" for _ in cols)
            names = ", ".join(f'"{c}"' for c in cols)
            return conn.execute(f'INSERT INTO "{table}" ({names}) VALUES ({marks})',
                                [v for _, v in fields]).rowcount

        return await self._run(database, q)  # type: ignore[no-any-return]

    async def destroy(self, database: str, table: str, keyfield: str, entity: str, fields: Fields) -> int:
        check_column(table)
        where, params = _where([(keyfield, entity), *fields])

        def q(conn: sqlite3.Connection) -> int:
            return conn.execute(f'DELETE FROM "{table}"{where}', params).rowcount

        return await self._run(database, q)  # type: ignore[no-any-return]

    async def require(self, database: str, table: str, columns: list[tuple[str, str, int]]) -> bool:
        check_column(table)
        db = self.dbs.get(database.lower())
        create = db is not None and db.requirements in ("createclose", "createchar")

        def q(conn: sqlite3.Connection) -> bool:
            have = {row[1].lower() for row in conn.execute(f'PRAGMA table_info("{table}")')}
            missing = [c for c in columns if c[0].lower() not in have]
            if not missing:
                return True
            if not create:
                log.warning("Realtime table '%s' lacks columns %s", table, ", ".join(c[0] for c in missing))
                return False
            if not have:
                conn.execute(f'CREATE TABLE "{table}" ({", ".join(f"{check_column(c[0])} TEXT" for c in columns)})')
            else:
                for c in missing:
                    conn.execute(f'ALTER TABLE "{table}" ADD COLUMN "{check_column(c[0])}" TEXT')
            return True

        return await self._run(database, q)  # type: ignore[no-any-return]

    def status(self) -> str:
        return "".join(f"{db.name}: {db.path}\n" for db in self.dbs.values())
