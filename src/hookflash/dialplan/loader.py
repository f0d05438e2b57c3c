"""``extensions.conf`` -> :class:`Dialplan`.

Errors name the file, line and the expected form; any error refuses the whole file
so a reload keeps the running dialplan. Warnings (a priority defined twice, as
Asterisk warns) are returned with the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hookflash.conf import ConfigError, ConfigFile, ConfigVariable, load
from hookflash.dialplan.args import split_app_call, split_args
from hookflash.dialplan.model import Context, Dialplan, Extension, Include, Priority
from hookflash.dialplan.pattern import PatternError, compile_pattern
from hookflash.dialplan.subst import compile_template, substitute
from hookflash.dialplan.timespec import TimeSpecError, parse_timespec

PRIORITY_HINT = -1
EXTEN_FORM = "'exten => name,priority,Application(arguments)'"


@dataclass
class LoadResult:
    dialplan: Dialplan
    globals: dict[str, str]
    warnings: list[str] = field(default_factory=list)


def _error(var: ConfigVariable, reason: str, expected: str) -> ConfigError:
    return ConfigError(var.filename, var.lineno, reason, expected)


class _ContextBuilder:
    def __init__(self, ctx: Context, warnings: list[str]) -> None:
        self.ctx = ctx
        self.warnings = warnings
        self.last_ext: Extension | None = None
        self.last_prio = -2  # Asterisk's lastpri: carries across extensions

    def add_line(self, var: ConfigVariable) -> None:
        key = var.name.lower()
        if key in ("exten", "same"):
            self._add_exten(var, same=(key == "same"))
        elif key == "include":
            self._add_include(var)
        elif key == "ignorepat":
            self.ctx.ignorepats.append(var.value.strip())
        elif key in ("switch", "eswitch", "lswitch"):
            self.warnings.append(f"{var.filename}:{var.lineno}: {var.name} => is not supported; line ignored")
        else:
            raise _error(var, f"unknown directive '{var.name}' in context [{self.ctx.name}]",
                         f"{EXTEN_FORM}, 'same => ...', 'include => context' or 'ignorepat => pattern'")

    def _add_include(self, var: ConfigVariable) -> None:
        text = var.value.strip()
        sep = "," if "," in text else "|"
        name, _, spec = text.partition(sep)
        name = name.strip()
        if not name:
            raise _error(var, "include without a context name", "'include => context[,times,weekdays,mdays,months[,tz]]'")
        timespec = None
        if spec.strip():
            try:
                timespec = parse_timespec(spec, sep)
            except TimeSpecError as exc:
                raise _error(var, str(exc), "'include => context,times,weekdays,mdays,months[,tz]'") from None
        self.ctx.includes.append(Include(name, timespec))

    def _add_exten(self, var: ConfigVariable, same: bool) -> None:
        text = var.value.strip()
        if same:
            if self.last_ext is None:
                raise _error(var, "'same =>' before any 'exten =>' in this context", EXTEN_FORM)
            name, cid = self.last_ext.name, self.last_ext.cid
            fields = split_args(text, ",", 1) if "," in text else [text]
            pri, appl = fields[0], (fields[1] if len(fields) > 1 else "")
        else:
            fields = _split_exten(text)
            if len(fields) < 2:
                raise _error(var, f"incomplete extension line '{text}'", EXTEN_FORM)
            name_cid, pri, appl = fields[0], fields[1], (fields[2] if len(fields) > 2 else "")
            name, slash, cid_text = name_cid.partition("/")
            name = name.strip()
            cid = cid_text.strip() if slash else None
            if not name:
                raise _error(var, "extension without a name", EXTEN_FORM)
        for pat in (name, cid):
            if pat is not None and pat.startswith("_"):
                try:
                    compile_pattern(pat)
                except PatternError as exc:
                    raise _error(var, f"bad pattern '{pat}': {exc}", "a pattern such as '_NXXXXXX', '_1[2-9]XX.' or '_X!'") from None
        ext = self.ctx.extension(name, cid)
        if ext is None:
            ext = Extension(name, self.ctx.name, cid, filename=var.filename, lineno=var.lineno)
            self.ctx.add_extension(ext)
        self.last_ext = ext
        pri = pri.strip()
        label = ""
        if "(" in pri and pri.endswith(")"):
            pri, label = pri[:-1].split("(", 1)
            pri, label = pri.strip(), label.strip()
        number = self._priority_number(var, ext, pri)
        if number == PRIORITY_HINT:
            ext.hint = appl.strip()
            return
        self.last_prio = number
        if number in ext.priorities:
            old = ext.priorities[number]
            self.warnings.append(
                f"{var.filename}:{var.lineno}: priority {number} of '{name}' in [{self.ctx.name}] "
                f"is already defined at {old.filename}:{old.lineno}; this line is ignored")
            return
        app, data = split_app_call(appl)
        if not app:
            raise _error(var, f"priority {number} of '{name}' has no application", EXTEN_FORM)
        problems: list[str] = []
        template = compile_template(data, problems)
        for problem in problems:
            self.warnings.append(f"{var.filename}:{var.lineno}: {problem} in the arguments of {app}")
        prio = Priority(number, label, app, app.lower(), template, var.filename, var.lineno, ext)
        ext.priorities[number] = prio
        if label:
            if label in ext.labels:
                self.warnings.append(f"{var.filename}:{var.lineno}: label '{label}' already used in '{name}'")
            else:
                ext.labels[label] = number

    def _priority_number(self, var: ConfigVariable, ext: Extension, pri: str) -> int:
        low = pri.lower()
        if low == "hint":
            return PRIORITY_HINT
        if low in ("n", "next"):
            if self.last_prio < 0:
                raise _error(var, "'n' priority on the first line of an extension", "a number for the first priority, e.g. 'exten => 100,1,...'")
            return self.last_prio + 1
        if low in ("s", "same"):
            if self.last_prio < 0:
                raise _error(var, "'s' priority with no previous priority", "a number for the first priority")
            return self.last_prio
        if low.startswith("n+") and low[2:].isdigit():
            return self.last_prio + int(low[2:])
        if pri.isdigit() and int(pri) > 0:
            return int(pri)
        if pri in ext.labels:
            return ext.labels[pri]
        raise _error(var, f"invalid priority '{pri}'", "a number > 0, 'n', 'n(label)', 'same', or 'hint'")


def _split_exten(text: str) -> list[str]:
    """name,priority,application — the name may hold ',' inside a '[...]' set."""
    fields: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch == "[" and not fields:
            depth += 1
        elif ch == "]" and not fields and depth:
            depth -= 1
        elif ch == "," and depth == 0:
            fields.append(text[start:i])
            start = i + 1
            if len(fields) == 2:
                break
    fields.append(text[start:])
    return fields


def _finish_loops(ctx: Context) -> None:
    """Pair each While with its EndWhile and note the innermost loop of every priority."""
    for variants in ctx.extensions.values():
        for ext in variants:
            stack: list[Priority] = []
            for number in sorted(ext.priorities):
                prio = ext.priorities[number]
                if stack:
                    prio.loop_head = stack[-1].number
                if prio.app_lower == "while":
                    stack.append(prio)
                elif prio.app_lower == "endwhile" and stack:
                    head = stack.pop()
                    head.loop_pair, prio.loop_pair = prio.number, head.number
                    prio.loop_head = head.number


def build(config: ConfigFile, base_globals: dict[str, str] | None = None) -> LoadResult:
    warnings: list[str] = []
    contexts: dict[str, Context] = {}
    globals_: dict[str, str] = dict(base_globals or {})
    settings: dict[str, str] = {}
    for section in config.sections:
        if section.is_template:
            continue
        lname = section.name.lower()
        if lname == "general":
            settings.update({k.lower(): v for k, v in section.items()})
            continue
        if lname == "globals":
            for var in section.variables:
                globals_[var.name] = substitute(var.value, None, _GlobalsView(globals_))
            continue
        ctx = contexts.get(section.name)
        if ctx is None:
            ctx = contexts[section.name] = Context(section.name, filename=section.filename, lineno=section.lineno)
        builder = _ContextBuilder(ctx, warnings)
        for var in section.variables:
            builder.add_line(var)
    for ctx in contexts.values():
        _finish_loops(ctx)
        for inc in ctx.includes:
            if inc.context not in contexts:
                warnings.append(f"{ctx.filename}:{ctx.lineno}: context [{ctx.name}] includes "
                                f"non-existent context '{inc.context}'")
    return LoadResult(Dialplan(contexts, list(config.files), settings), globals_, warnings)


class _GlobalsView:
    """Lets ``[globals]`` values refer to globals defined above them."""

    def __init__(self, globals_: dict[str, str]) -> None:
        self.globals = globals_
        from hookflash.engine.registry import Registry
        self.registry = Registry()


def load_dialplan(path: Path, base_globals: dict[str, str] | None = None) -> LoadResult:
    return build(load(path), base_globals)
