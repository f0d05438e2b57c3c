"""``asterisk.conf``: where things live (``[directories]``) and global ``[options]``.

``load_asterisk_conf(config_dir, default_root=...)`` reads
``config_dir/asterisk.conf``.  If the file is missing, or a directory is not set
in it, these defaults apply:

==============  ====================================================  =======================
key             default                                               used for
==============  ====================================================  =======================
astetcdir       ``config_dir``                                        configuration files
astmoddir       ``default_root/modules``                              modules
astvarlibdir    ``default_root/lib``                                  variable state
astdbdir        ``default_root/db`` (``astvarlibdir`` if only that    AstDB, in ``astdbdir/astdb``
                is set in asterisk.conf)
astkeydir       ``default_root/lib`` (``astdatadir`` if only that     keys, in ``astkeydir/keys``
                is set in asterisk.conf)
astdatadir      ``/usr/share/asterisk`` if that directory exists,     sounds (``astdatadir/sounds``),
                else ``default_root/data``                            music on hold, ...
astagidir       ``default_root/agi-bin``                              AGI scripts
astspooldir     ``default_root/spool``                                voicemail, outgoing calls
astrundir       ``default_root/run``                                  pid file, control socket
astlogdir       ``default_root/log``                                  logs, CDR files
astsbindir      ``default_root/sbin``                                 helper programs
astcachedir     ``default_root/cache``                                cached media
==============  ====================================================  =======================

Relative paths in asterisk.conf are relative to ``config_dir``.  As in Asterisk,
only a non-template ``[directories]`` section counts: the sample asterisk.conf
ships ``[directories](!)``, which Asterisk ignores, so the defaults apply.

``[options]`` understood (defaults as in Asterisk): ``verbose`` (0), ``debug``
(0; a number or yes/no), ``trace`` (0), ``runuser``/``rungroup`` (unset),
``systemname`` (""), ``autosystemname`` (no; yes sets systemname to the host
name), ``maxcalls`` (0 = no limit), ``maxload`` (0.0 = no limit), ``maxfiles``
(0 = leave the limit alone), ``mindtmfduration`` (80 ms), ``languageprefix``
(yes), ``transmit_silence`` or ``transmit_silence_during_record`` (no),
``documentation_language`` (en_US), ``defaultlanguage`` (en),
``cache_record_files`` (no), ``record_cache_dir`` (/tmp), ``live_dangerously`` (no).
Options are applied in file order, so a later line wins.  Unknown keys and
sections are ignored, as Asterisk does.  A bad number or yes/no value is an
error naming file and line, where Asterisk would quietly use 0 or "no".
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

from hookflash.conf.parser import ConfigSection, ConfigVariable, load

__all__ = ["AsteriskConf", "AsteriskOptions", "Directories", "load_asterisk_conf", "SYSTEM_DATA_DIR"]

SYSTEM_DATA_DIR = Path("/usr/share/asterisk")


@dataclass(frozen=True, slots=True)
class Directories:
    astetcdir: Path
    astmoddir: Path
    astvarlibdir: Path
    astdbdir: Path
    astkeydir: Path
    astdatadir: Path
    astagidir: Path
    astspooldir: Path
    astrundir: Path
    astlogdir: Path
    astsbindir: Path
    astcachedir: Path

    @property
    def astdb_file(self) -> Path:
        return self.astdbdir / "astdb"

    @property
    def keys_dir(self) -> Path:
        return self.astkeydir / "keys"

    @property
    def sounds_dir(self) -> Path:
        return self.astdatadir / "sounds"


@dataclass(frozen=True, slots=True)
class AsteriskOptions:
    verbose: int = 0
    debug: int = 0
    trace: int = 0
    runuser: str | None = None
    rungroup: str | None = None
    systemname: str = ""
    autosystemname: bool = False
    maxcalls: int = 0
    maxload: float = 0.0
    maxfiles: int = 0
    mindtmfduration: int = 80
    languageprefix: bool = True
    transmit_silence: bool = False
    documentation_language: str = "en_US"
    defaultlanguage: str = "en"
    cache_record_files: bool = False
    record_cache_dir: Path = Path("/tmp")
    live_dangerously: bool = False


@dataclass(frozen=True, slots=True)
class AsteriskConf:
    directories: Directories
    options: AsteriskOptions
    filename: Path | None = None  # the asterisk.conf read, None when defaults only


def load_asterisk_conf(config_dir: Path, *, default_root: Path,
                       system_data_dir: Path = SYSTEM_DATA_DIR) -> AsteriskConf:
    """Read ``config_dir/asterisk.conf``; see the module docstring for defaults."""
    config_dir = Path(os.path.abspath(config_dir))
    path = config_dir / "asterisk.conf"
    if not path.is_file():
        return AsteriskConf(_directories({}, config_dir, default_root, system_data_dir), AsteriskOptions())
    conf = load(path)
    given = _read_directories(_section(conf.sections, "directories"), config_dir)
    directories = _directories(given, config_dir, default_root, system_data_dir)
    return AsteriskConf(directories, _read_options(_section(conf.sections, "options"), config_dir), path)


def _section(sections: list[ConfigSection], name: str) -> ConfigSection | None:
    """The first non-template section called ``name`` (Asterisk's ast_variable_browse)."""
    return next((s for s in sections if s.name.lower() == name and not s.is_template), None)


def _read_directories(section: ConfigSection | None, config_dir: Path) -> dict[str, Path]:
    known = {f.name for f in fields(Directories)}
    given: dict[str, Path] = {}
    for var in section.variables if section else []:
        if var.name.lower() in known:
            given[var.name.lower()] = _path(var, config_dir)
    return given


def _directories(given: dict[str, Path], config_dir: Path, root: Path, system_data: Path) -> Directories:
    root = Path(os.path.abspath(root))
    data = system_data if system_data.is_dir() else root / "data"
    defaults = {
        "astetcdir": config_dir, "astmoddir": root / "modules", "astvarlibdir": root / "lib",
        "astdbdir": given.get("astvarlibdir", root / "db"),
        "astkeydir": given.get("astdatadir", root / "lib"),
        "astdatadir": data, "astagidir": root / "agi-bin", "astspooldir": root / "spool",
        "astrundir": root / "run", "astlogdir": root / "log", "astsbindir": root / "sbin",
        "astcachedir": root / "cache",
    }
    return Directories(**(defaults | given))


def _read_options(section: ConfigSection | None, config_dir: Path) -> AsteriskOptions:
    values: dict[str, Any] = {}
    for var in section.variables if section else []:
        key = var.name.lower()
        if key == "transmit_silence_during_record":
            key = "transmit_silence"
        if key in _OPTION_PARSERS:
            values[key] = _OPTION_PARSERS[key](var, config_dir)
        if key == "autosystemname" and values[key]:
            values["systemname"] = _hostname()
    return AsteriskOptions(**values)


def _hostname() -> str:
    try:
        return socket.gethostname() or "localhost"
    except OSError:
        return "localhost"


def _path(var: ConfigVariable, config_dir: Path) -> Path:
    if not var.value:
        raise var.error(f"{var.name} is empty", f"'{var.name} = /a/directory'")
    return Path(os.path.normpath(config_dir / var.value))


def _whole(var: ConfigVariable, *, bool_ok: bool = False) -> int:
    if re.fullmatch(r"[0-9]+", var.value, re.ASCII):
        return int(var.value)
    if bool_ok and var.value.lower() in ("yes", "true", "y", "t", "on", "no", "false", "n", "f", "off"):
        return int(var.as_bool())
    what = "a whole number or yes/no" if bool_ok else "a whole number"
    raise var.error(f"{var.name} value '{var.value}' is not {what}", f"'{var.name} = 3' ({what}, 0 or more)")


def _decimal(var: ConfigVariable) -> float:
    if re.fullmatch(r"[0-9]+(\.[0-9]*)?|\.[0-9]+", var.value):
        return float(var.value)
    raise var.error(f"{var.name} value '{var.value}' is not a number", f"'{var.name} = 0.9' (0 or more)")


_Parser = Callable[[ConfigVariable, Path], Any]
_OPTION_PARSERS: dict[str, _Parser] = {
    "verbose": lambda v, _: _whole(v),
    "debug": lambda v, _: _whole(v, bool_ok=True),
    "trace": lambda v, _: _whole(v, bool_ok=True),
    "runuser": lambda v, _: v.value or None,
    "rungroup": lambda v, _: v.value or None,
    "systemname": lambda v, _: v.value,
    "autosystemname": lambda v, _: v.as_bool(),
    "maxcalls": lambda v, _: _whole(v),
    "maxload": lambda v, _: _decimal(v),
    "maxfiles": lambda v, _: _whole(v),
    "mindtmfduration": lambda v, _: _whole(v),
    "languageprefix": lambda v, _: v.as_bool(),
    "transmit_silence": lambda v, _: v.as_bool(),
    "documentation_language": lambda v, _: v.value,
    "defaultlanguage": lambda v, _: v.value,
    "cache_record_files": lambda v, _: v.as_bool(),
    "record_cache_dir": _path,
    "live_dangerously": lambda v, _: v.as_bool(),
}
