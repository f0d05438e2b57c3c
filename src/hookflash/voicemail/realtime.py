"""Mailboxes from the ``voicemail`` realtime family (Asterisk's voicemail table:
``uniqueid, context, mailbox, password, fullname, email, pager`` and one column per
mailbox option: ``attach``, ``saycid``, ``maxmsg``, ``tz``, ``imapuser``,
``imappassword``, ...). A column whose value is not what its option takes is dropped
with a warning naming the mailbox; unknown columns are ignored."""

from __future__ import annotations

import logging
import re

from hookflash.conf.parser import ConfigError, ConfigVariable
from hookflash.voicemail.config import _ALIASES, Mailbox, _typed

log = logging.getLogger("hookflash.voicemail.realtime")

RT_KEEP = 60.0
BASE = {"uniqueid", "context", "mailbox", "password", "fullname", "email", "pager", "stamp", "customer_id"}
_SAFE = re.compile(r"^[A-Za-z0-9_.+\-]{1,80}$")


def safe(name: str) -> bool:
    return bool(_SAFE.match(name))


def mailbox_from_record(record: list[tuple[str, str]], context: str, mailbox: str) -> Mailbox:
    values: dict[str, str] = {}
    options: dict[str, str] = {}
    for column, value in record:
        key = column.lower()
        if key in BASE:
            values.setdefault(key, value)
            continue
        if value == "" or key in options:
            continue
        key = _ALIASES.get(key, key)
        try:
            _typed(ConfigVariable(column, value, "realtime:voicemail", 0), key, value.strip())
        except ConfigError:
            log.warning("Realtime mailbox %s@%s: column %s has a bad value '%s'; ignored", mailbox, context,
                        column, value[:40])
            continue
        options[key] = value.strip()
    return Mailbox(values.get("context") or context, values.get("mailbox") or mailbox, values.get("password", ""),
                   values.get("fullname", ""), values.get("email", ""), values.get("pager", ""), options,
                   "realtime:voicemail", 0)
