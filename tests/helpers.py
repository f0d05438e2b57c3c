"""Test helpers: a real Pbx on a temporary configuration directory."""

from __future__ import annotations

import asyncio
import textwrap
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

from hookflash.channels.channel import Channel
from hookflash.channels.local import LocalTech
from hookflash.engine.pbx import Pbx


def write_config(directory: Path, extensions: str, **files: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "extensions.conf").write_text(textwrap.dedent(extensions))
    for name, text in files.items():
        (directory / name.replace("_conf", ".conf")).write_text(textwrap.dedent(text))
    return directory


@asynccontextmanager
async def running_pbx(tmp_path: Path, extensions: str, verbose: int = 3, **files: str) -> AsyncIterator[tuple[Pbx, list[str]]]:
    config = write_config(tmp_path / "etc", extensions, **files)
    pbx = Pbx(config, state_dir=tmp_path / "var", verbose=verbose)
    lines: list[str] = []
    pbx.verbosity.sinks.append(lines.append)
    await pbx.start()
    try:
        yield pbx, lines
    finally:
        await pbx.stop()


async def call(pbx: Pbx, target: str, variables: dict[str, str] | None = None,
               timeout: float = 10.0) -> Channel:
    """Run EXTEN@CONTEXT on the ;2 half of a Local channel until everything settles."""
    exten, _, context = target.partition("@")
    one = await pbx.request(f"Local/{exten}@{context}/n")
    for name, value in (variables or {}).items():
        one.set_var(name, value)
    tech = one.tech
    assert isinstance(tech, LocalTech)
    two = tech.pair.chan
    assert two is not None
    await tech.call(one, target, timeout)

    async def settle() -> None:
        while not two.hung_up or [t for t in pbx.tasks if not t.done()]:
            await asyncio.sleep(0.005)

    await asyncio.wait_for(settle(), timeout)
    await one.hangup()
    return two


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)
