"""pbx_config: loads ``extensions.conf``; ``dialplan show`` and ``dialplan reload``.

A reload compiles a whole new Dialplan and swaps it in one assignment. If the new file
has an error, the running dialplan stays and the error (file, line, expected form) is
reported. ``[general]`` ``clearglobalvars=yes`` replaces the globals on reload; by
default new values are merged over the old, as in Asterisk. ``looplimit`` (hookflash)
sets how many priorities a call may run in a row without waiting before it is ended as
a runaway loop (default 2,000,000).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from hookflash.conf import ConfigError
from hookflash.dialplan.loader import LoadResult, build
from hookflash.dialplan.model import Context, Dialplan
from hookflash.dialplan.pattern import compile_pattern
from hookflash.engine.modules import Module
from hookflash.engine.registry import CliArgs, CliCommand

if TYPE_CHECKING:
    pass

log = logging.getLogger("hookflash.pbx_config")


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def show_context(ctx: Context, lines: list[str], exten_filter: str | None = None) -> tuple[int, int]:
    """Append ``dialplan show`` lines for one context; return (extensions, priorities)."""
    lines.append(f"[ Context '{ctx.name}' created by 'pbx_config' ]")
    n_ext = n_prio = 0
    names = sorted(ctx.extensions, key=lambda name: _sort_key(ctx, name))
    for name in names:
        if exten_filter is not None and name != exten_filter and \
                not compile_pattern(name).matches(exten_filter):
            continue
        for ext in ctx.extensions[name]:
            n_ext += 1
            head = f"'{ext.name}'" + (f" (CID match '{ext.cid}')" if ext.cid else "") + " =>"
            first = True
            if ext.hint is not None:
                lines.append(f"  {head:<17s} {'hint: ' + ext.hint:<45s} [{ext.filename}:{ext.lineno}]")
                first = False
            for number in sorted(ext.priorities):
                prio = ext.priorities[number]
                n_prio += 1
                text = f"{number}. {prio.app}({prio.data.source})"
                label = head if first else (f"   [{prio.label}]" if prio.label else "")
                first = False
                lines.append(f"  {label:<17s} {text:<45s} [{prio.filename}:{prio.lineno}]")
    for inc in ctx.includes:
        text = f"'{inc.context}" + (f"|{inc.timespec.text}" if inc.timespec else "") + "'"
        lines.append(f"  Include =>        {text:<45s} [pbx_config]")
    for pat in ctx.ignorepats:
        lines.append(f"  Ignore pattern => {pat:<45s} [pbx_config]")
    lines.append("")
    return n_ext, n_prio


def _sort_key(ctx: Context, name: str) -> tuple:  # type: ignore[type-arg]
    return compile_pattern(name).sort_key


def show_dialplan(dialplan: Dialplan, argv: list[str]) -> str:
    exten_filter = context_filter = None
    if argv:
        target = argv[0]
        if "@" in target:
            exten_filter, _, context_filter = target.partition("@")
            exten_filter = exten_filter or None
        else:
            context_filter = target
    lines: list[str] = []
    n_ctx = n_ext = n_prio = 0
    for ctx in dialplan.contexts.values():
        if context_filter and ctx.name != context_filter:
            continue
        e, p = show_context(ctx, lines, exten_filter)
        n_ctx += 1
        n_ext += e
        n_prio += p
    if context_filter and not n_ctx:
        return f"There is no existence of '{context_filter}' context\n"
    lines.append(f"-= {_plural(n_ext, 'extension')} ({_plural(n_prio, 'priority', 'priorities')}) "
                 f"in {_plural(n_ctx, 'context')}. =-")
    return "\n".join(lines) + "\n"


class PbxConfigModule(Module):
    description = "Text Extension Configuration"
    core = True

    async def start(self) -> None:
        result = self._compile()
        self._apply(result, first=True)

    def _compile(self) -> LoadResult:
        path = self.pbx.config_path("extensions.conf")
        if not path.exists():
            log.warning("No extensions.conf in %s: the dialplan is empty", self.pbx.config_dir)
            return LoadResult(Dialplan({}), {})
        from hookflash.conf import load
        return build(load(path))

    def _apply(self, result: LoadResult, first: bool = False) -> None:
        for warning in result.warnings:
            log.warning("%s", warning)
        settings = result.dialplan.settings
        if first or settings.get("clearglobalvars", "no").lower() in ("yes", "true", "1", "on"):
            self.pbx.globals.clear()
        self.pbx.globals.update(result.globals)
        limit = settings.get("looplimit")
        if limit and limit.isdigit():
            self.pbx.loop_limit = max(1000, int(limit))
        self.pbx.dialplan = result.dialplan  # the atomic swap

    async def reload(self) -> str | None:
        try:
            result = self._compile()
        except ConfigError as exc:
            log.error("Dialplan not reloaded, the running dialplan is kept: %s", exc)
            return str(exc)
        self._apply(result)
        return None

    def commands(self) -> list[CliCommand]:
        return [
            CliCommand(("dialplan", "show"), self._cli_show, "Show dialplan",
                       "Usage: dialplan show [[exten@]context]\n       Show dialplan",
                       complete=lambda pbx, words, word: [c for c in pbx.dialplan.contexts if c.startswith(word)]),
            CliCommand(("dialplan", "reload"), self._cli_reload, "Reload extensions and *only* extensions",
                       "Usage: dialplan reload\n       Reload extensions.conf without reloading any other modules.\n"
                       "       Calls in progress finish on the dialplan they started with."),
        ]

    def _cli_show(self, args: CliArgs) -> str:
        return show_dialplan(self.pbx.dialplan, args.argv)

    async def _cli_reload(self, args: CliArgs) -> str:
        error = await self.reload()
        if error:
            return f"Dialplan not reloaded (the running dialplan is kept): {error}\n"
        return "Dialplan reloaded.\n"
