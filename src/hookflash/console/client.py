"""Console front ends: ``-rx`` (one command), ``-r`` (interactive, remote) and the
foreground console of the server itself. Interactive consoles use prompt_toolkit
(history in ``~/.hookflash_history``, tab completion asked of the server)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

PROMPT = "*CLI> "
HISTORY = Path(os.environ.get("HOME", ".")) / ".hookflash_history"


class RemoteConsole:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.replies: asyncio.Queue[dict[str, object]] = asyncio.Queue()
        self.on_log: Callable[[str], None] | None = None
        self._pump: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    async def connect(self, logs: bool = False) -> None:
        self.reader, self.writer = await asyncio.open_unix_connection(str(self.path), limit=1 << 22)
        self._pump = asyncio.ensure_future(self._read())
        await self._send({"hello": {"logs": logs}})
        await self.replies.get()

    async def _send(self, message: dict[str, object]) -> None:
        assert self.writer is not None
        self.writer.write(json.dumps(message).encode() + b"\n")
        await self.writer.drain()

    async def _read(self) -> None:
        assert self.reader is not None
        try:
            while True:
                line = await self.reader.readline()
                if not line:
                    break
                message = json.loads(line)
                if "log" in message:
                    if self.on_log is not None:
                        self.on_log(str(message["log"]))
                else:
                    self.replies.put_nowait(message)
        finally:
            self.closed.set()
            self.replies.put_nowait({"out": "", "done": True, "closed": True})

    async def command(self, line: str) -> str:
        await self._send({"cmd": line})
        reply = await self.replies.get()
        return str(reply.get("out", ""))

    async def complete(self, line: str) -> list[str]:
        await self._send({"complete": line})
        reply = await self.replies.get()
        matches = reply.get("matches", [])
        return [str(m) for m in matches] if isinstance(matches, list) else []

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self._pump is not None:
            self._pump.cancel()


async def execute_remote(path: Path, line: str) -> str:
    """``hookflash -rx``: run one command on the running server."""
    console = RemoteConsole(path)
    await console.connect(logs=False)
    try:
        return await console.command(line)
    finally:
        await console.close()


async def interactive(run: Callable[[str], Awaitable[str]],
                      completions: Callable[[str], Awaitable[list[str]]],
                      hook_output: Callable[[Callable[[str], None]], None],
                      stopped: asyncio.Event | None = None) -> None:
    """A prompt_toolkit console: reads lines, runs them, prints output and logs."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import Completer, Completion
    from prompt_toolkit.history import FileHistory
    from prompt_toolkit.patch_stdout import patch_stdout

    class _Completer(Completer):
        def get_completions(self, document, complete_event) -> Iterable[Completion]:  # type: ignore[no-untyped-def]
            return []

        async def get_completions_async(self, document, complete_event):  # type: ignore[no-untyped-def]
            text = document.text_before_cursor
            word = "" if text.endswith(" ") or not text else text.split()[-1]
            for match in await completions(text):
                yield Completion(match, start_position=-len(word))

    session: PromptSession[str] = PromptSession(history=FileHistory(str(HISTORY)), completer=_Completer())
    with patch_stdout(raw=True):
        hook_output(lambda text: print(text, flush=True))
        while stopped is None or not stopped.is_set():
            try:
                line = await session.prompt_async(PROMPT)
            except (EOFError, KeyboardInterrupt):
                break
            line = line.strip()
            if not line:
                continue
            if line in ("quit", "exit"):
                break
            out = await run(line)
            if out:
                print(out, end="" if out.endswith("\n") else "\n", flush=True)


async def remote_console(path: Path) -> int:
    """``hookflash -r``."""
    console = RemoteConsole(path)
    buffered: list[str] = []
    console.on_log = buffered.append
    await console.connect(logs=True)
    print(f"Connected to hookflash on {path}", flush=True)

    def hook(printer: Callable[[str], None]) -> None:
        for line in buffered:
            printer(line)
        console.on_log = printer

    if not sys.stdin.isatty():
        for raw in sys.stdin:
            if raw.strip():
                print(await console.command(raw.strip()), end="", flush=True)
        await console.close()
        return 0
    await interactive(console.command, console.complete, hook, console.closed)
    await console.close()
    if console.closed.is_set():
        print("Disconnected from hookflash server", flush=True)
    return 0
