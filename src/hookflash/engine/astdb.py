"""AstDB: the family/key -> value store, in SQLite as Asterisk keeps it.

The file is ``<astdbdir>/astdb.sqlite3`` with Asterisk's table
``astdb(key PRIMARY KEY, value)`` and keys ``/family/key``, so an Asterisk database can
be copied in. Writes are committed at once (WAL journal, synchronous=NORMAL): a local
SQLite write takes microseconds, so calls use it directly from the event loop.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from hookflash.engine.modules import Module
from hookflash.engine.registry import CliArgs, CliCommand, Function

if TYPE_CHECKING:
    from hookflash.channels.channel import Channel


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class AstDb:
    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        if self.path != ":memory:":
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS astdb(key VARCHAR(256), value VARCHAR(256), "
                        "PRIMARY KEY(key))")

    @staticmethod
    def _key(family: str, key: str) -> str:
        return f"/{family}/{key}"

    def put(self, family: str, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO astdb(key, value) VALUES (?, ?)",
                        (self._key(family, key), value))

    def get(self, family: str, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM astdb WHERE key = ?",
                              (self._key(family, key),)).fetchone()
        return None if row is None else str(row[0])

    def delete(self, family: str, key: str) -> bool:
        cur = self.db.execute("DELETE FROM astdb WHERE key = ?", (self._key(family, key),))
        return cur.rowcount > 0

    def _tree(self, family: str | None, keytree: str | None) -> tuple[str, tuple[str, ...]]:
        if not family:
            return "1", ()
        prefix = f"/{family}" + (f"/{keytree}" if keytree else "")
        return ("(key = ? OR key LIKE ? ESCAPE '\\')", (prefix, _escape_like(prefix) + "/%"))

    def deltree(self, family: str | None, keytree: str | None = None) -> int:
        where, params = self._tree(family, keytree)
        return self.db.execute(f"DELETE FROM astdb WHERE {where}", params).rowcount

    def show(self, family: str | None = None, keytree: str | None = None) -> list[tuple[str, str]]:
        where, params = self._tree(family, keytree)
        rows = self.db.execute(f"SELECT key, value FROM astdb WHERE {where} ORDER BY key", params)
        return [(str(k), str(v)) for k, v in rows]

    def showkey(self, key: str) -> list[tuple[str, str]]:
        rows = self.db.execute("SELECT key, value FROM astdb WHERE key LIKE ? ESCAPE '\\' ORDER BY key",
                               ("%/" + _escape_like(key),))
        return [(str(k), str(v)) for k, v in rows]

    def keys(self, prefix: str) -> list[str]:
        """The distinct next-level key names under ``/prefix`` (for DB_KEYS)."""
        prefix = prefix.strip("/")
        base = f"/{prefix}/" if prefix else "/"
        rows = self.db.execute("SELECT key FROM astdb WHERE key LIKE ? ESCAPE '\\' ORDER BY key",
                               (_escape_like(base) + "%",))
        seen: list[str] = []
        for (key,) in rows:
            name = str(key)[len(base):].split("/", 1)[0]
            if name and name not in seen:
                seen.append(name)
        return seen

    def close(self) -> None:
        self.db.close()


def _show_rows(rows: list[tuple[str, str]]) -> str:
    lines = [f"{key:<50s}: {value:<25s}" for key, value in rows]
    lines.append(f"{len(rows)} results found.")
    return "\n".join(lines) + "\n"


def _db(args: CliArgs) -> AstDb:
    db = args.pbx.astdb
    if db is None:
        raise RuntimeError("AstDB is not loaded")
    return db


def _cli_show(args: CliArgs) -> str:
    argv = args.argv
    return _show_rows(_db(args).show(argv[0] if argv else None, argv[1] if len(argv) > 1 else None))


def _cli_showkey(args: CliArgs) -> str:
    if len(args.argv) != 1:
        return "Usage: database showkey <keytree>\n"
    return _show_rows(_db(args).showkey(args.argv[0]))


def _cli_get(args: CliArgs) -> str:
    if len(args.argv) != 2:
        return "Usage: database get <family> <key>\n"
    value = _db(args).get(*args.argv)
    return "Database entry not found.\n" if value is None else f"Value: {value}\n"


def _cli_put(args: CliArgs) -> str:
    if len(args.argv) != 3:
        return "Usage: database put <family> <key> <value>\n"
    _db(args).put(*args.argv)
    return "Updated database successfully\n"


def _cli_del(args: CliArgs) -> str:
    if len(args.argv) != 2:
        return "Usage: database del <family> <key>\n"
    if _db(args).delete(*args.argv):
        return "Database entry removed.\n"
    return "Database entry does not exist.\n"


def _cli_deltree(args: CliArgs) -> str:
    if len(args.argv) not in (1, 2):
        return "Usage: database deltree <family> [keytree]\n"
    count = _db(args).deltree(args.argv[0], args.argv[1] if len(args.argv) > 1 else None)
    if count <= 0:
        return "Database entries do not exist.\n"
    return f"{count} database entries removed.\n"


class AstDbModule(Module):
    description = "Asterisk database (AstDB) in SQLite"
    core = True

    async def start(self) -> None:
        self.pbx.astdb = AstDb(Path(self.pbx.dirs.astdbdir) / "astdb.sqlite3")

    async def stop(self) -> None:
        if self.pbx.astdb is not None:
            self.pbx.astdb.close()
            self.pbx.astdb = None

    def commands(self) -> list[CliCommand]:
        return [
            CliCommand(("database", "show"), _cli_show, "Shows database contents",
                       "Usage: database show [family [keytree]]"),
            CliCommand(("database", "showkey"), _cli_showkey, "Shows database contents",
                       "Usage: database showkey <keytree>"),
            CliCommand(("database", "get"), _cli_get, "Gets database value",
                       "Usage: database get <family> <key>"),
            CliCommand(("database", "put"), _cli_put, "Adds/updates database value",
                       "Usage: database put <family> <key> <value>"),
            CliCommand(("database", "del"), _cli_del, "Removes database key/value",
                       "Usage: database del <family> <key>"),
            CliCommand(("database", "deltree"), _cli_deltree, "Removes database keytree/values",
                       "Usage: database deltree <family> [keytree]"),
        ]


# ---------------------------------------------------------------------- dialplan functions
def _split(chan: "Channel | None", args: str, func: str) -> tuple[AstDb, str, str]:
    from hookflash.engine.registry import DialplanError
    family, slash, key = args.strip().partition("/")
    if not slash or not family or not key:
        raise DialplanError(f"{func} requires an argument, {func}(<family>/<key>)")
    if chan is None or chan.pbx.astdb is None:
        raise DialplanError(f"{func}: AstDB is not loaded")
    return chan.pbx.astdb, family, key


def _db_read(chan: "Channel | None", args: str) -> str:
    db, family, key = _split(chan, args, "DB")
    value = db.get(family, key)
    return "" if value is None else value


def _db_write(chan: "Channel | None", args: str, value: str) -> None:
    db, family, key = _split(chan, args, "DB")
    db.put(family, key, value)


def _db_exists(chan: "Channel | None", args: str) -> str:
    db, family, key = _split(chan, args, "DB_EXISTS")
    value = db.get(family, key)
    if value is None:
        return "0"
    assert chan is not None
    chan.set_var("DB_RESULT", value)
    return "1"


def _db_delete(chan: "Channel | None", args: str) -> str:
    db, family, key = _split(chan, args, "DB_DELETE")
    value = db.get(family, key)
    if value is None:
        return ""
    db.delete(family, key)
    return value


def _db_keys(chan: "Channel | None", args: str) -> str:
    if chan is None or chan.pbx.astdb is None:
        return ""
    return ",".join(chan.pbx.astdb.keys(args.strip()))


class FuncDbModule(Module):
    description = "Database (astdb) related dialplan functions"

    def functions(self) -> list[Function]:
        return [
            Function("DB", _db_read, _db_write, "Read from or write to the Asterisk database.",
                     "DB(family/key)"),
            Function("DB_EXISTS", _db_exists, None, "Check to see if a key exists in the Asterisk database.",
                     "DB_EXISTS(family/key)", "Returns 1 or 0; sets DB_RESULT to the value when it exists."),
            Function("DB_DELETE", _db_delete, None, "Return a value from the database and delete it.",
                     "DB_DELETE(family/key)"),
            Function("DB_KEYS", _db_keys, None, "Obtain a list of keys within the Asterisk database.",
                     "DB_KEYS([prefix])", "Comma-separated names of the keys one level below prefix."),
        ]
