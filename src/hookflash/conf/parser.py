"""Parser for Asterisk-style ``.conf`` files, written to match Asterisk 20's
``main/config.c`` behaviour on the files Asterisk accepts, and to stop with a
``file:line: ...; expected ...`` error where Asterisk would only log a warning.

Syntax handled
--------------
* ``[name]`` starts a section; ``[name](options)`` takes a comma-separated
  option list, processed left to right:

  - ``!``            the section is a template (kept, ``is_template=True``);
  - ``tmpl``         copy the variables of the first earlier section called
                     ``tmpl`` (template or not) into this one, before its own;
  - ``+``            do not create a section: append to the first earlier
                     non-template section with this name.  ``+filter`` narrows
                     the choice with Asterisk's filter syntax, expressions
                     joined by ``&``: ``TEMPLATES=include`` (templates may
                     match too), ``TEMPLATES=restrict`` (only templates), or
                     ``name=value`` regular expressions that one of the
                     section's variables must match.

  Option names are whitespace-stripped (Asterisk does not strip them).
* ``name = value``, ``name => value`` (``is_object``) and ``name += value``
  (appends the text to the last variable of that exact name in the section,
  which keeps its original position, file and line; plain ``=`` if there is
  none).  A leading backslash escapes the first character of the name, so
  ``\\[x] = 1`` defines a variable called ``[x]``.
* ``;`` starts a comment unless written ``\\;`` (which becomes ``;``).
  ``;--`` ... ``--;`` is a block comment; block comments nest and may span lines.
  ``;---`` is an ordinary line comment.
* ``#include file``, ``#include "file"``, ``#include <file>``, ``#tryinclude``.
  Relative names are resolved against the configuration directory (the
  directory of the top-level file), never against the including file.
  Glob matches are read in sorted order (``{a,b}`` alternatives in the order
  written); a pattern matching no file is an error for ``#include``, as in
  Asterisk.  ``#exec`` is refused.

Asterisk quirks kept on purpose
-------------------------------
* After an ``#include`` returns, the including file continues in the section it
  was in before the include, even if the included file opened new sections.
  The included file itself starts in the most recently opened section.
* Inherited variables are copied when the header is read: variables appended
  to a template later (``(+)``) do not reach sections already derived from it.
* Repeated section names stay separate sections; ``(+)`` and inheritance use
  the first one.

Deliberately stricter than Asterisk (which logs a warning and carries on):
lines without ``=``, empty variable names, unknown ``#`` directives (``#`` is
not a comment character), ``#include`` without a file name, text after a
section header (``[foo] (!)`` is *not* a template in Asterisk), empty options
such as ``[foo]()``, and unterminated block comments are all errors.
A ``--;`` outside a block comment is an ordinary ``;`` comment here (Asterisk
miscounts it and silently drops the lines that follow).  An error inside an
included file fails the whole load (Asterisk abandons only the rest of that
file), and every file matched by a glob gets its own line numbers and comment
state (Asterisk carries both over from one matched file to the next).

Files are decoded as UTF-8, falling back to Latin-1 for files that are not
valid UTF-8 (Asterisk itself treats values as bytes).
"""

from __future__ import annotations

import errno
import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ConfigError",
    "ConfigFileNotFound",
    "ConfigVariable",
    "ConfigSection",
    "ConfigFile",
    "parse_text",
    "load",
    "parse_bool",
]

_WS = " \t\n\v\f\r"  # C isspace() in the "C" locale, which is what ast_strip() uses
_LINE_FORMS = "'name = value', 'name => value', '[section]' or '#include file'"
_HEADER_FORMS = "'[name]' or '[name](options)'"
_TRUE_WORDS = frozenset({"yes", "true", "y", "t", "1", "on"})
_FALSE_WORDS = frozenset({"no", "false", "n", "f", "0", "off"})


class ConfigError(ValueError):
    """A configuration problem, located: ``"<file>:<line>: <reason>; expected <form>"``."""

    def __init__(self, filename: str, lineno: int, reason: str, expected: str) -> None:
        self.filename = filename
        self.lineno = lineno
        self.reason = reason
        self.expected = expected
        self.message = f"{filename}:{lineno}: {reason}; expected {expected}"
        super().__init__(self.message)

    def __str__(self) -> str:  # also for ConfigFileNotFound, whose OSError base formats differently
        return self.message

    def __reduce__(self):  # keep the exception picklable despite the custom __init__
        return (type(self), (self.filename, self.lineno, self.reason, self.expected))


class ConfigFileNotFound(ConfigError, FileNotFoundError):
    """The top-level file given to :func:`load` does not exist (line 0)."""

    def __init__(self, filename: str, lineno: int, reason: str, expected: str) -> None:
        super().__init__(filename, lineno, reason, expected)
        self.errno, self.strerror = errno.ENOENT, os.strerror(errno.ENOENT)


def parse_bool(value: str) -> bool:
    """Asterisk's ``ast_true``/``ast_false`` words, case-insensitive.

    True for yes/true/y/t/1/on, False for no/false/n/f/0/off.  Anything else
    (including the empty string) raises ``ValueError``: Asterisk silently reads
    such values as "no", which hides typos.  :class:`ConfigError` is a
    ``ValueError``; use :meth:`ConfigVariable.as_bool` to get one with file/line.
    """
    word = value.strip(_WS).lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise ValueError(f"{value!r} is not a yes/no value")


@dataclass(frozen=True, slots=True)
class ConfigVariable:
    name: str
    value: str
    filename: str
    lineno: int
    is_object: bool = False

    def as_bool(self) -> bool:
        """:func:`parse_bool` of the value, raising ConfigError at this variable's line."""
        try:
            return parse_bool(self.value)
        except ValueError:
            raise self.error(
                f"{self.name} value '{self.value}' is not a yes/no value",
                f"'{self.name} = yes' or '{self.name} = no' (also true/false, on/off, 1/0)",
            ) from None

    def error(self, reason: str, expected: str) -> ConfigError:
        """A ConfigError located at this variable, for later layers to raise."""
        return ConfigError(self.filename, self.lineno, reason, expected)


@dataclass(eq=False, slots=True)
class ConfigSection:
    name: str
    filename: str
    lineno: int
    is_template: bool = False
    templates: tuple[str, ...] = ()
    variables: list[ConfigVariable] = field(default_factory=list)

    def get(self, name: str, default: str | None = None) -> str | None:
        """Value of the LAST variable called ``name`` (case-insensitive).

        Asterisk's ``ast_variable_retrieve`` returns the FIRST match, so there an
        inherited template value hides the section's own.  Most Asterisk modules
        instead walk the variables in order and let each assignment overwrite the
        previous one; "last wins" reproduces that, so a section's own value
        overrides what it inherited.  Use :meth:`getall` for repeatable keys.
        """
        for var in reversed(self.variables):
            if var.name.lower() == name.lower():
                return var.value
        return default

    def getall(self, name: str) -> list[str]:
        """Every value of ``name`` (case-insensitive), in file order."""
        return [v.value for v in self.variables if v.name.lower() == name.lower()]

    def items(self) -> list[tuple[str, str]]:
        return [(v.name, v.value) for v in self.variables]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(v.name.lower() == name.lower() for v in self.variables)


@dataclass(eq=False, slots=True)
class ConfigFile:
    filename: str
    sections: list[ConfigSection] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def sections_named(self, name: str) -> list[ConfigSection]:
        """All sections called ``name`` (case-insensitive), templates included."""
        return [s for s in self.sections if s.name.lower() == name.lower()]

    def get(self, section: str, key: str, default: str | None = None) -> str | None:
        """``key`` in the first non-template section called ``section``."""
        for sec in self.sections_named(section):
            if not sec.is_template:
                return sec.get(key, default)
        return default

    def section_names(self) -> list[str]:
        """Names of the non-template sections, in file order, each name once."""
        seen: set[str] = set()
        names = []
        for sec in self.sections:
            if not sec.is_template and sec.name.lower() not in seen:
                seen.add(sec.name.lower())
                names.append(sec.name)
        return names


def parse_text(text: str, filename: str = "<string>", *, base_dir: Path | None = None) -> ConfigFile:
    """Parse configuration text.  Relative ``#include`` names resolve against
    ``base_dir``; without one, only absolute ``#include`` paths work."""
    parser = _Parser(ConfigFile(filename), base_dir)
    parser.parse_lines(text, filename)
    return parser.config


def load(path: str | Path) -> ConfigFile:
    """Parse a file; its directory is the configuration directory for includes."""
    path = Path(os.path.abspath(path))
    if not path.is_file():
        raise ConfigFileNotFound(path.name, 0, f"configuration file {path} not found",
                                 "an existing, readable file")
    parser = _Parser(ConfigFile(str(path)), path.parent)
    parser.parse_file(path, None)
    return parser.config


class _Parser:
    def __init__(self, config: ConfigFile, base_dir: Path | None) -> None:
        self.config = config
        self.base_dir = Path(os.path.abspath(base_dir)) if base_dir is not None else None
        self.current: ConfigSection | None = None  # last section opened, in any file
        self.stack: list[tuple[str, str]] = []  # (realpath, display name) of files being read

    def parse_file(self, path: Path, where: tuple[str, int] | None) -> None:
        """Parse one file; ``where`` is the (file, line) of the #include naming it."""
        real, name = os.path.realpath(path), self.display_name(path)
        where = where or (name, 0)
        if any(real == r for r, _ in self.stack):
            chain = " -> ".join([n for _, n in self.stack] + [name])
            raise ConfigError(*where, f"#include cycle {chain}",
                              "each file to appear at most once in a chain of #includes")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(*where, f"cannot read {path}: {exc.strerror}", "a readable file") from None
        if str(path) not in self.config.files:
            self.config.files.append(str(path))
        self.stack.append((real, name))
        self.parse_lines(_decode(data), name)
        self.stack.pop()

    def display_name(self, path: Path) -> str:
        if self.base_dir is not None and path.is_relative_to(self.base_dir):
            return str(path.relative_to(self.base_dir))
        return str(path)

    def parse_lines(self, text: str, fname: str) -> None:
        section = self.current
        open_comments: list[int] = []
        for lineno, raw in enumerate(text.split("\n"), start=1):
            line = _strip_comments(raw, open_comments, lineno).strip(_WS)
            if not line:
                continue
            if line[0] == "[":
                section = self.header(line, fname, lineno)
            elif line[0] == "#":
                self.directive(line, fname, lineno)
            else:
                self.assignment(line, section, fname, lineno)
        if open_comments:
            raise ConfigError(fname, open_comments[-1], "block comment ';--' is never closed",
                              "a matching '--;' later in the same file")

    # -- section headers -------------------------------------------------

    def header(self, line: str, fname: str, lineno: int) -> ConfigSection:
        def fail(reason: str) -> ConfigError:
            return ConfigError(fname, lineno, reason, _HEADER_FORMS)

        close = line.find("]")
        if close < 0:
            raise fail(f"unterminated section header '{line}'")
        name, rest = line[1:close], line[close + 1:]
        options: list[str] = []
        if rest:
            end = rest.find(")")
            if rest[0] != "(":
                raise fail(f"unexpected text '{rest}' after section header '[{name}]'")
            if end < 0:
                raise fail(f"unterminated option list in '{line}'")
            if rest[end + 1:]:
                raise fail(f"unexpected text '{rest[end + 1:]}' after '{line[:close + end + 2]}'")
            options = [opt.strip(_WS) for opt in rest[1:end].split(",")]
        section = ConfigSection(name, fname, lineno)
        target = section
        for opt in options:
            target = self.apply_option(opt, section, target, fname, lineno)
        if target is section:
            self.config.sections.append(section)
        self.current = target
        return target

    def apply_option(self, opt: str, new: ConfigSection, target: ConfigSection,
                     fname: str, lineno: int) -> ConfigSection:
        """Apply one header option; returns the section later lines go to."""
        if opt == "!":
            target.is_template = True
        elif opt.startswith("+"):
            existing = self.find_for_append(new.name, opt[1:], fname, lineno)
            if target is new:  # move what the new header collected so far
                existing.is_template |= new.is_template
                existing.variables.extend(new.variables)
                existing.templates += new.templates
            return existing
        elif not opt:
            raise ConfigError(fname, lineno, f"empty option in section header '[{new.name}]'",
                              "'[name](!)', '[name](template,...)' or '[name](+)'")
        else:
            base = next((s for s in self.config.sections if s.name.lower() == opt.lower()), None)
            if base is None:
                raise ConfigError(fname, lineno, f"unknown template '{opt}' in section '[{new.name}]'",
                                  f"a section or template '[{opt}]' defined before it is used")
            target.variables.extend(base.variables)
            target.templates += (base.name,)
        return target

    def find_for_append(self, name: str, flt: str, fname: str, lineno: int) -> ConfigSection:
        for sec in self.config.sections:
            if sec.name.lower() == name.lower() and _filter_matches(sec, flt, fname, lineno):
                return sec
        if not flt and any(s.name.lower() == name.lower() for s in self.config.sections):
            expected = f"'[{name}](+TEMPLATES=include)' to append to a template"
        else:
            expected = f"a section '[{name}]' defined before '[{name}](+)'"
        raise ConfigError(fname, lineno, f"'[{name}](+{flt})' appends to a section that does not exist",
                          expected)

    # -- directives ------------------------------------------------------

    def directive(self, line: str, fname: str, lineno: int) -> None:
        match = re.match(r"#([^\x00-\x20]*)(.*)", line, re.S)
        assert match is not None
        word, arg = match[1].lower(), match[2].strip(_WS)
        if word == "exec":
            raise ConfigError(fname, lineno, "#exec is refused: hookflash does not run commands "
                              "from configuration files", "'#include file' of the command's saved output")
        if word not in ("include", "tryinclude"):
            what = "'#' does not start a comment" if not word else f"unknown directive '#{match[1]}'"
            raise ConfigError(fname, lineno, what, "'#include file', '#tryinclude file' or '; comment'")
        if not arg:
            raise ConfigError(fname, lineno, f"'#{word}' without a file name", f"'#{word} file'")
        target = _dequote(arg)
        paths = self.expand(target, fname, lineno)
        if not paths and word == "include":
            raise ConfigError(fname, lineno, f"included file '{target}' not found",
                              "an existing file (use '#tryinclude' for an optional one)")
        for path in paths:
            self.parse_file(path, (fname, lineno))

    def expand(self, target: str, fname: str, lineno: int) -> list[Path]:
        """Files an include name stands for: glob and brace expansion, regular files only."""
        if "\0" in target:
            raise ConfigError(fname, lineno, "include file name contains a NUL character", "'#include file'")
        if not os.path.isabs(target):
            if self.base_dir is None:
                raise ConfigError(fname, lineno, f"relative '#include {target}' with no configuration "
                                  "directory", "an absolute path, or a file loaded from a directory")
            target = os.path.join(self.base_dir, target)
        found: list[str] = []
        for pattern in _expand_braces(target):
            names = sorted(glob.glob(pattern)) if re.search(r"[*?[]", pattern) else [pattern]
            found.extend(n for n in names if n not in found and os.path.isfile(n))
        return [Path(n) for n in found]

    # -- name = value ----------------------------------------------------

    def assignment(self, line: str, section: ConfigSection | None, fname: str, lineno: int) -> None:
        if section is None:
            raise ConfigError(fname, lineno, "variable outside of any section",
                              "a '[section]' header before the first 'name = value' line")
        escaped = line[0] == "\\"
        body = line[1:] if escaped else line
        if escaped and (not body or ord(body[0]) < 33):
            raise ConfigError(fname, lineno, "invalid escape: '\\' not followed by a printable "
                              "character", "'\\' only before a name's first character, as in '\\[x] = 1'")
        eq = body.find("=", 1 if escaped else 0)
        if eq < 0:
            raise ConfigError(fname, lineno, "line has no '=' or '=>'", _LINE_FORMS)
        is_object = False
        if eq > (1 if escaped else 0) and body[eq - 1] == "+":
            name, raw = body[:eq - 1].strip(_WS), body[eq + 1:]
            if name and _append_value(section, name, raw):
                return
            value = raw.strip(_WS)
        else:
            name, value = body[:eq].strip(_WS), body[eq + 1:]
            is_object = value.startswith(">")
            value = (value[1:] if is_object else value).strip(_WS)
        if not name:
            raise ConfigError(fname, lineno, "no variable name before '='", _LINE_FORMS)
        section.variables.append(ConfigVariable(name, value, fname, lineno, is_object))


def _strip_comments(line: str, open_comments: list[int], lineno: int) -> str:
    """The part of ``line`` outside comments, with ``\\;`` unescaped.

    ``open_comments`` holds the start lines of the block comments still open;
    it is updated in place and carries over from line to line.
    """
    out: list[str] = []
    i = 0
    while True:
        j = line.find(";", i)
        if j < 0:
            if not open_comments:
                out.append(line[i:])
            return "".join(out)
        if j > i and line[j - 1] == "\\":
            if not open_comments:
                out.append(line[i:j - 1] + ";")
            i = j + 1
        elif line.startswith("--", j + 1) and not line.startswith("-", j + 3):
            if not open_comments:
                out.append(line[i:j])
            open_comments.append(lineno)
            i = j + 3
        elif open_comments and j >= i + 2 and line[j - 2:j] == "--":
            open_comments.pop()
            i = j + 1
        elif open_comments:
            i = j + 1
        else:
            out.append(line[i:j])
            return "".join(out)


def _append_value(section: ConfigSection, name: str, raw: str) -> bool:
    """``name += raw``: extend the last variable named exactly ``name`` in place."""
    for index in range(len(section.variables) - 1, -1, -1):
        old = section.variables[index]
        if old.name == name:
            value = (old.value + raw).rstrip(_WS).lstrip(" \t")
            section.variables[index] = ConfigVariable(
                old.name, value, old.filename, old.lineno, old.is_object)
            return True
    return False


def _filter_matches(section: ConfigSection, flt: str, fname: str, lineno: int) -> bool:
    """Asterisk's category filter, as used after ``+`` in a section header."""
    if not flt.strip(_WS):
        return not section.is_template
    template_ok = False
    for expr in flt.split("&"):
        name, eq, value = expr.partition("=")
        name, value = name.strip(_WS), value.strip(_WS)
        if not eq:
            return False
        if name == "TEMPLATES":
            if value.lower() == "include":
                template_ok = True
            elif value.lower() == "restrict" and section.is_template:
                template_ok = True
            else:
                return False
        elif not any(_search(name, v.name, fname, lineno) and _search(value, v.value, fname, lineno)
                     for v in section.variables):
            return False
    return template_ok or not section.is_template


def _search(pattern: str, text: str, fname: str, lineno: int) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error as exc:
        raise ConfigError(fname, lineno, f"bad regular expression '{pattern}' in section filter: {exc}",
                          "'[name](+variable=regex)'") from None


def _expand_braces(pattern: str) -> list[str]:
    """``a{b,c}d`` -> ``[abd, acd]``, like glob(3)'s GLOB_BRACE (innermost first)."""
    for match in re.finditer(r"\{([^{}]*)\}", pattern):
        if "," in match[1]:
            head, tail = pattern[:match.start()], pattern[match.end():]
            return [p for alt in match[1].split(",") for p in _expand_braces(head + alt + tail)]
    return [pattern]


def _dequote(arg: str) -> str:
    closing = {'"': '"', "<": ">"}.get(arg[0])
    if closing and len(arg) > 1 and arg.endswith(closing):
        return arg[1:-1]
    return arg


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")
