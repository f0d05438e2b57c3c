"""Placeholder while this module is being built (issue 4/5)."""

from hookflash.engine.modules import Module, ModuleDeclined


class EwsModule(Module):
    async def start(self) -> None:
        raise ModuleDeclined("not built yet")
