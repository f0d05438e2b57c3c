"""Reading Asterisk-format configuration files."""

from hookflash.conf.asterisk_conf import AsteriskConf, AsteriskOptions, Directories, load_asterisk_conf
from hookflash.conf.parser import (
    ConfigError,
    ConfigFile,
    ConfigFileNotFound,
    ConfigSection,
    ConfigVariable,
    load,
    parse_bool,
    parse_text,
)

__all__ = [
    "AsteriskConf",
    "AsteriskOptions",
    "Directories",
    "load_asterisk_conf",
    "ConfigError",
    "ConfigFile",
    "ConfigFileNotFound",
    "ConfigSection",
    "ConfigVariable",
    "load",
    "parse_bool",
    "parse_text",
]
