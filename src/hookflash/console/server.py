"""The console socket: ``hookflash -r`` and ``hookflash -rx`` talk to the server here.

A Unix stream socket (mode 0660), one JSON object per line each way:

* client -> server: ``{"cmd": "core show channels"}``, ``{"complete": "core sh"}``,
  ``{"hello": {"logs": true}}`` (a remote console that wants verbose/log output);
* server -> client: ``{"out": "...text...", "done": true}``, ``{"matches": [...]}``,
  ``{"log": "line"}`` (only to consoles that asked for logs).

A slow or stuck console never holds the PBX up: each has a bounded output queue and
lines past it are dropped for that console.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from hookflash.engine.cli_core import complete, run_command

if TYPE_CHECKING:
    from hookflash.engine.pbx import Pbx

log = logging.getLogger("hookflash.console")
MAX_LINE = 1 << 20


class ConsoleServer:
    def __init__(self, pbx: "Pbx", path: Path) -> None:
        self.pbx = pbx
        self.path = Path(path)
        self.server: asyncio.AbstractServer | None = None
        self.clients: set[asyncio.Queue[bytes | None]] = set()

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            if await _alive(self.path):
                raise RuntimeError(f"another hookflash is already running on {self.path}")
            self.path.unlink()
        self.server = await asyncio.start_unix_server(self._client, path=str(self.path), limit=MAX_LINE)
        os.chmod(self.path, 0o660)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for queue in list(self.clients):
                queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 1)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=2000)
        sink = None
        sender = asyncio.ensure_future(self._sender(queue, writer))
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    break
                if not line:
                    break
                try:
                    message = json.loads(line)
                except ValueError:
                    _put(queue, {"out": "Malformed console request\n", "done": True})
                    continue
                if not isinstance(message, dict):
                    continue
                if "hello" in message:
                    if isinstance(message["hello"], dict) and message["hello"].get("logs") and sink is None:
                        def sink(text: str, q: asyncio.Queue[bytes | None] = queue) -> None:
                            _put(q, {"log": text})
                        self.pbx.verbosity.sinks.append(sink)
                    _put(queue, {"hello": {"version": _version(), "socket": str(self.path)}})
                elif "cmd" in message:
                    out = await run_command(self.pbx, str(message["cmd"]))
                    _put(queue, {"out": out, "done": True})
                elif "complete" in message:
                    _put(queue, {"matches": complete(self.pbx, str(message["complete"]))})
        finally:
            if sink is not None:
                with contextlib.suppress(ValueError):
                    self.pbx.verbosity.sinks.remove(sink)
            queue.put_nowait(None) if not queue.full() else None
            sender.cancel()
            writer.close()

    async def _sender(self, queue: asyncio.Queue[bytes | None], writer: asyncio.StreamWriter) -> None:
        self.clients.add(queue)
        try:
            while True:
                data = await queue.get()
                if data is None:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.clients.discard(queue)


def _put(queue: asyncio.Queue[bytes | None], message: dict[str, object]) -> None:
    try:
        queue.put_nowait(json.dumps(message).encode() + b"\n")
    except asyncio.QueueFull:
        pass


def _version() -> str:
    from hookflash import __version__
    return __version__


async def _alive(path: Path) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), 1)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    return True
