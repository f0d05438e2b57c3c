"""Tests for hookflash.conf: the Asterisk .conf parser and asterisk.conf."""

from __future__ import annotations

import errno
import pickle
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookflash.conf import (
    ConfigError,
    ConfigFile,
    ConfigFileNotFound,
    load,
    load_asterisk_conf,
    parse_bool,
    parse_text,
)

LINE_FORMS = "expected 'name = value', 'name => value', '[section]' or '#include file'"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def load_text(tmp_path: Path, text: str, name: str = "test.conf") -> ConfigFile:
    return load(write(tmp_path, name, text))


def error_of(tmp_path: Path, text: str, name: str = "test.conf") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text, name)
    return info.value


def values(section) -> list[tuple[str, str]]:
    return section.items()


# -- basic syntax ---------------------------------------------------------------


def test_sections_and_assignments(tmp_path):
    conf = load_text(tmp_path, "[general]\n  bindport   =  5060  \nempty =\n\n[other]\nexten => s,1,NoOp()\n")
    general, other = conf.sections
    assert (general.name, general.filename, general.lineno) == ("general", "test.conf", 1)
    assert values(general) == [("bindport", "5060"), ("empty", "")]
    assert general.variables[0].is_object is False
    assert other.variables[0] == other.variables[0].__class__("exten", "s,1,NoOp()", "test.conf", 6, True)
    assert conf.filename == str(tmp_path / "test.conf")
    assert conf.files == [str(tmp_path / "test.conf")]


def test_value_keeps_inner_equals_and_arrows(tmp_path):
    conf = load_text(tmp_path, "[c]\nexten => _X.,1,Set(A=${B})\nweird ==> x\n")
    assert values(conf.sections[0]) == [("exten", "_X.,1,Set(A=${B})"), ("weird", "=> x")]


def test_line_without_equals_is_error(tmp_path):
    err = error_of(tmp_path, "[c]\nfoo = 1\n\njunk here\n", "extensions.conf")
    assert str(err) == f"extensions.conf:4: line has no '=' or '=>'; {LINE_FORMS}"
    assert (err.filename, err.lineno, err.reason) == ("extensions.conf", 4, "line has no '=' or '=>'")


def test_unterminated_header_message(tmp_path):
    err = error_of(tmp_path, "; sip\n\n[general\n", "sip.conf")
    assert str(err) == ("sip.conf:3: unterminated section header '[general'; "
                        "expected '[name]' or '[name](options)'")


def test_variable_before_any_section_is_error(tmp_path):
    err = error_of(tmp_path, "foo = bar\n")
    assert (err.lineno, "expected" in str(err)) == (1, True)


def test_crlf_line_endings(tmp_path):
    path = tmp_path / "dos.conf"
    path.write_bytes(b"[a]\r\nx = 1 ; c\r\ny => 2\r\n")
    assert values(load(path).sections[0]) == [("x", "1"), ("y", "2")]


def test_latin1_file_is_accepted(tmp_path):
    path = tmp_path / "vm.conf"
    path.write_bytes("[default]\n100 => 1234,J\xfcrgen\n".encode("latin-1"))
    assert load(path).get("default", "100") == "1234,J\xfcrgen"


# -- comments -------------------------------------------------------------------


def test_line_comments_and_escaped_semicolon(tmp_path):
    text = "; header\n[a] ; trailing\nx = 1 ; note\ny = a\\;b ; c\nz = \\;\\;;x\nw = 1 ;--- not a block\n"
    conf = load_text(tmp_path, text)
    assert values(conf.sections[0]) == [("x", "1"), ("y", "a;b"), ("z", ";;"), ("w", "1")]


def test_block_comment_inline_and_multiline(tmp_path):
    text = ("[a]\n"
            "x = 1 ;-- inline --; ; more\n"
            "y = 2 ;-- starts here\n"
            "z = 3\n"
            "still comment --; w = 4\n"
            "v = a;-- mid --;b\n")
    conf = load_text(tmp_path, text)
    assert values(conf.sections[0]) == [("x", "1"), ("y", "2"), ("w", "4"), ("v", "ab")]
    assert conf.sections[0].variables[2].lineno == 5


def test_block_comments_nest(tmp_path):
    text = "[a]\n;-- outer\n;-- inner --;\nhidden = 1\n--;\nshown = 2\n"
    assert values(load_text(tmp_path, text).sections[0]) == [("shown", "2")]


def test_close_marker_outside_block_is_plain_comment(tmp_path):
    conf = load_text(tmp_path, "[a]\nx = a--; whatever\ny = 2\n")
    assert values(conf.sections[0]) == [("x", "a--"), ("y", "2")]


def test_block_comment_hides_directives_and_headers(tmp_path):
    conf = load_text(tmp_path, "[a]\n;--\n#include nothere.conf\n[b]\n--;\nx = 1\n")
    assert [s.name for s in conf.sections] == ["a"]
    assert values(conf.sections[0]) == [("x", "1")]


def test_unterminated_block_comment_names_start_line(tmp_path):
    err = error_of(tmp_path, "[a]\nx = 1\n;-- never closed\ny = 2\n")
    assert err.lineno == 3
    assert str(err).startswith("test.conf:3: block comment ';--' is never closed; expected")


def test_unterminated_nested_block_names_innermost_open(tmp_path):
    err = error_of(tmp_path, "[a]\n;-- one\n;-- two\n--;\n")
    assert err.lineno == 2


# -- includes -------------------------------------------------------------------


def test_include_relative_to_config_dir_and_quotes(tmp_path):
    write(tmp_path, "sub/a.conf", "#include <sub/deeper/b.conf>\n")
    write(tmp_path, "sub/deeper/b.conf", "from_b = yes\n")
    write(tmp_path, "c.conf", "from_c = yes\n")
    main = write(tmp_path, "main.conf", '[s]\n#include sub/a.conf\n#include "c.conf"\n')
    conf = load(main)
    assert values(conf.sections[0]) == [("from_b", "yes"), ("from_c", "yes")]
    assert [(v.filename, v.lineno) for v in conf.sections[0].variables] == [
        ("sub/deeper/b.conf", 1), ("c.conf", 1)]
    read = ("main.conf", "sub/a.conf", "sub/deeper/b.conf", "c.conf")
    assert conf.files == [str(tmp_path / n) for n in read]


def test_include_glob_sorted(tmp_path):
    for name in ("extensions-b.conf", "extensions-a.conf", "extensions-c.conf"):
        write(tmp_path, name, f"name = {name}\n")
    conf = load_text(tmp_path, "[s]\n#include extensions-*.conf\n")
    assert conf.sections[0].getall("name") == ["extensions-a.conf", "extensions-b.conf", "extensions-c.conf"]
    # line numbers restart in every matched file (Asterisk keeps counting across them)
    assert {v.lineno for v in conf.sections[0].variables} == {1}


def test_include_brace_alternatives_in_order(tmp_path):
    write(tmp_path, "x.conf", "n = x\n")
    write(tmp_path, "y.conf", "n = y\n")
    conf = load_text(tmp_path, "[s]\n#include {y,x}.conf\n")
    assert conf.sections[0].getall("n") == ["y", "x"]


def test_include_glob_matching_nothing_is_error(tmp_path):
    err = error_of(tmp_path, "[s]\n#include nothing-*.conf\n", "extensions.conf")
    assert (err.filename, err.lineno) == ("extensions.conf", 2)


def test_tryinclude_missing_is_fine(tmp_path):
    conf = load_text(tmp_path, "[s]\n#tryinclude missing.conf\n#tryinclude missing-*.conf\nx = 1\n")
    assert values(conf.sections[0]) == [("x", "1")]


def test_include_missing_names_including_file_and_line(tmp_path):
    write(tmp_path, "inner.conf", "[a]\n\n#include gone.conf\n")
    err = error_of(tmp_path, "#include inner.conf\n", "outer.conf")
    assert str(err).startswith("inner.conf:3: included file 'gone.conf' not found; expected")


def test_include_cycle_is_error(tmp_path):
    write(tmp_path, "a.conf", "[s]\n#include b.conf\n")
    write(tmp_path, "b.conf", "x = 1\n#include a.conf\n")
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "a.conf")
    assert (info.value.filename, info.value.lineno) == ("b.conf", 2)
    assert "a.conf -> b.conf -> a.conf" in str(info.value)


def test_same_file_included_twice_is_not_a_cycle(tmp_path):
    write(tmp_path, "common.conf", "c = 1\n")
    conf = load_text(tmp_path, "[a]\n#include common.conf\n[b]\n#include common.conf\n")
    assert [s.getall("c") for s in conf.sections] == [["1"], ["1"]]


def test_exec_is_refused(tmp_path):
    err = error_of(tmp_path, "[a]\n#exec /bin/echo x=1\n")
    assert err.lineno == 2 and "#exec" in err.reason and "expected" in str(err)


def test_unknown_directive_and_hash_comment_are_errors(tmp_path):
    assert "unknown directive '#inclde'" in str(error_of(tmp_path, "#inclde x.conf\n"))
    assert "does not start a comment" in str(error_of(tmp_path, "# a comment\n"))
    assert "without a file name" in str(error_of(tmp_path, "#include\n"))


def test_included_file_continues_current_section(tmp_path):
    write(tmp_path, "vars.conf", "inc = 1\n")
    conf = load_text(tmp_path, "[a]\nbefore = 1\n#include vars.conf\nafter = 1\n")
    assert [n for n, _ in values(conf.sections[0])] == ["before", "inc", "after"]


def test_includer_keeps_its_section_after_include(tmp_path):
    # Asterisk quirk: the including file's own "current section" is not moved by
    # sections opened in the included file; the next included file starts in them.
    write(tmp_path, "b.conf", "[b]\nin_b = 1\n")
    write(tmp_path, "c.conf", "in_c = 1\n")
    conf = load_text(tmp_path, "[a]\n#include b.conf\n#include c.conf\nafter = 1\n")
    a, b = conf.sections
    assert [n for n, _ in values(a)] == ["after"]
    assert [n for n, _ in values(b)] == ["in_b", "in_c"]


def test_parse_text_relative_include_uses_base_dir(tmp_path):
    write(tmp_path, "inc.conf", "x = 1\n")
    conf = parse_text("[a]\n#include inc.conf\n", "virtual.conf", base_dir=tmp_path)
    assert values(conf.sections[0]) == [("x", "1")]
    with pytest.raises(ConfigError):
        parse_text("[a]\n#include inc.conf\n")


# -- templates and inheritance ----------------------------------------------------


def test_template_flag_and_inheritance_order(tmp_path):
    text = ("[t1](!)\na = t1\nb = t1\n"
            "[t2](!)\nb = t2\nc = t2\n"
            "[dev](t1,t2)\nc = own\n")
    conf = load_text(tmp_path, text)
    t1, t2, dev = conf.sections
    assert t1.is_template and t2.is_template and not dev.is_template
    assert dev.templates == ("t1", "t2")
    assert values(dev) == [("a", "t1"), ("b", "t1"), ("b", "t2"), ("c", "t2"), ("c", "own")]
    assert (dev.get("b"), dev.get("c")) == ("t2", "own")
    assert conf.section_names() == ["dev"]
    assert conf.get("t1", "a") is None and conf.get("dev", "a") == "t1"


def test_template_inheriting_template_and_plain_section(tmp_path):
    text = "[base]\nx = 1\n[mid](!,base)\ny = 2\n[leaf]( mid )\nz = 3\n"
    leaf = load_text(tmp_path, text).sections[2]
    assert values(leaf) == [("x", "1"), ("y", "2"), ("z", "3")]
    assert leaf.templates == ("mid",)


def test_inherited_variables_keep_template_file_and_line(tmp_path):
    write(tmp_path, "templates.conf", "[phone](!)\n\ncontext = from-phones\n")
    conf = load_text(tmp_path, "#include templates.conf\n[100](phone)\nsecret = x\n", "pjsip.conf")
    dev = conf.sections_named("100")[0]
    assert [(v.name, v.filename, v.lineno) for v in dev.variables] == [
        ("context", "templates.conf", 3), ("secret", "pjsip.conf", 3)]
    assert (dev.filename, dev.lineno) == ("pjsip.conf", 2)


def test_inheritance_is_a_copy_at_header_time(tmp_path):
    text = "[t](!)\na = 1\n[s](t)\n[t](+TEMPLATES=include)\nb = 2\n"
    conf = load_text(tmp_path, text)
    assert values(conf.sections_named("s")[0]) == [("a", "1")]
    assert values(conf.sections_named("t")[0]) == [("a", "1"), ("b", "2")]


def test_unknown_template_is_error(tmp_path):
    err = error_of(tmp_path, "[a]\nx = 1\n[b](nosuch)\n", "sip.conf")
    assert str(err).startswith("sip.conf:3: unknown template 'nosuch' in section '[b]'; expected")


def test_template_must_be_defined_earlier(tmp_path):
    assert error_of(tmp_path, "[b](later)\n[later](!)\n").lineno == 1


def test_append_to_existing_section(tmp_path):
    conf = load_text(tmp_path, "[a]\nx = 1\n[b]\ny = 1\n[a](+)\nz = 2\n")
    assert [s.name for s in conf.sections] == ["a", "b"]
    assert values(conf.sections[0]) == [("x", "1"), ("z", "2")]
    assert conf.sections[0].variables[1].lineno == 6


def test_append_combined_with_templates_and_bang(tmp_path):
    conf = load_text(tmp_path, "[t](!)\nt = 1\n[a]\nx = 1\n[a](t,+)\ny = 2\n[a](+,!)\n")
    a = conf.sections_named("a")[0]
    assert values(a) == [("x", "1"), ("t", "1"), ("y", "2")]
    assert a.is_template and a.templates == ("t",)


def test_append_to_missing_section_is_error(tmp_path):
    err = error_of(tmp_path, "[a]\n[b](+)\n")
    assert err.lineno == 2 and "does not exist" in err.reason


def test_append_to_template_needs_filter(tmp_path):
    err = error_of(tmp_path, "[t](!)\n[t](+)\n")
    assert "(+TEMPLATES=include)" in err.expected
    conf = load_text(tmp_path, "[t](!)\n[t](+TEMPLATES=include)\nx = 1\n")
    assert conf.sections[0].is_template and values(conf.sections[0]) == [("x", "1")]


def test_append_filter_picks_matching_section(tmp_path):
    text = ("[x]\ntype = aor\n[x]\ntype = endpoint\n"
            "[x](+type=^endpoint$)\ncontext = c\n[x](+)\nmax_contacts = 1\n")
    aor, endpoint = load_text(tmp_path, text).sections
    assert values(endpoint) == [("type", "endpoint"), ("context", "c")]
    assert values(aor) == [("type", "aor"), ("max_contacts", "1")]
    assert "regular expression" in error_of(tmp_path, "[x]\nt = 1\n[x](+t=()\n").reason


@pytest.mark.parametrize("header", ["[a]x", "[a] (!)", "[a](!", "[a](!)x", "[a]()", "[a](!,)"])
def test_malformed_headers(tmp_path, header):
    err = error_of(tmp_path, f"[t](!)\n{header}\n")
    assert err.lineno == 2 and "expected" in str(err)


# -- repeated keys and sections, lookups -------------------------------------------


def test_repeated_keys_and_sections_are_kept(tmp_path):
    conf = load_text(tmp_path, "[ctx]\nexten => 1,1,A\nexten => 1,2,B\n[CTX]\nexten => 2,1,C\n[ctx]\n")
    assert len(conf.sections_named("ctx")) == 3
    first = conf.sections[0]
    assert first.getall("EXTEN") == ["1,1,A", "1,2,B"]
    assert first.get("exten") == "1,2,B"
    assert "Exten" in first and "nope" not in first and 3 not in first
    assert conf.get("Ctx", "exten") == "1,2,B"
    assert conf.get("none", "x", "dflt") == "dflt" and conf.get("ctx", "x", "d") == "d"
    assert conf.section_names() == ["ctx"]


def test_plus_equals_appends_to_last_same_named_value(tmp_path):
    # The appended text is taken verbatim after '+=' (Asterisk does not strip its left side).
    text = "[a]\nallow = ulaw\nallow = alaw\nallow +=,g722\nallow += ,gsm\nnew += x\n"
    conf = load_text(tmp_path, text)
    assert values(conf.sections[0]) == [("allow", "ulaw"), ("allow", "alaw,g722 ,gsm"), ("new", "x")]
    assert conf.sections[0].variables[1].lineno == 3


def test_backslash_escapes_first_character_of_name(tmp_path):
    conf = load_text(tmp_path, "[a]\n\\[x] = 1\n\\#y = 2\n\\==3\n")
    assert values(conf.sections[0]) == [("[x]", "1"), ("#y", "2"), ("=", "3")]
    assert "invalid escape" in error_of(tmp_path, "[a]\n\\ x = 1\n").reason


def test_empty_name_is_error(tmp_path):
    assert error_of(tmp_path, "[a]\n = 1\n").lineno == 2


# -- every error is located and says what was expected ------------------------------


@pytest.mark.parametrize("text", [
    "[a]\nnoequals\n", "[a\n", "x = 1\n", "[a]\n= 1\n", "[a](missing)\n", "[a](+)\n",
    ";-- open\n", "#include nothere.conf\n", "#exec ls\n", "#what\n", "[a]\n\\\t= 1\n",
    "[a]()\n", "[a]junk\n",
])
def test_errors_name_file_line_and_expected(tmp_path, text):
    err = error_of(tmp_path, text, "broken.conf")
    assert err.filename == "broken.conf" and err.lineno >= 1
    assert str(err).startswith(f"broken.conf:{err.lineno}: {err.reason}; expected ")
    assert pickle.loads(pickle.dumps(err)).args == err.args


def test_load_missing_file(tmp_path):
    with pytest.raises(ConfigFileNotFound) as info:
        load(tmp_path / "nope.conf")
    assert isinstance(info.value, FileNotFoundError) and str(info.value).startswith("nope.conf:0: ")
    assert info.value.errno == errno.ENOENT


# -- booleans -----------------------------------------------------------------------


@pytest.mark.parametrize("word", ["yes", "TRUE", "y", "t", "1", "On", " yes "])
def test_parse_bool_true(word):
    assert parse_bool(word) is True


@pytest.mark.parametrize("word", ["no", "False", "n", "f", "0", "OFF"])
def test_parse_bool_false(word):
    assert parse_bool(word) is False


def test_parse_bool_rejects_garbage_and_as_bool_locates_it(tmp_path):
    for word in ("", "maybe", "2", "yess"):
        with pytest.raises(ValueError):
            parse_bool(word)
    var = load_text(tmp_path, "[a]\n\nnat = maybe\n", "sip.conf").sections[0].variables[0]
    with pytest.raises(ConfigError) as info:
        var.as_bool()
    assert str(info.value).startswith("sip.conf:3: nat value 'maybe' is not a yes/no value; expected")


# -- property: arbitrary text never crashes the parser ---------------------------------

CONF_ALPHABET = st.sampled_from(
    list("[]()!+,;-=>#\\ \t\nabc\"<*{}.") + ["include ", "tryinclude ", ";--", "--;"])


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.lists(CONF_ALPHABET, max_size=60).map("".join)))
def test_parse_text_only_raises_config_error(text):
    try:
        result = parse_text(text, "fuzz.conf")
    except ConfigError as err:
        assert str(err).startswith("fuzz.conf:") or str(err).startswith("/")
    else:
        assert isinstance(result, ConfigFile)


@pytest.fixture(scope="module")
def include_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("fuzzconf")
    write(directory, "a.conf", "[x]\ny = 1\n")
    write(directory, "b.conf", "#include a.conf\n[z](x)\n")
    write(directory, "c.conf", "#include c.conf\n")
    return directory


@settings(max_examples=300, deadline=None)
@given(text=st.lists(st.one_of(CONF_ALPHABET, st.sampled_from(["a", "b", "c", ".conf", "x", "z"])),
                     max_size=60).map("".join))
def test_parse_text_with_includes_only_raises_config_error(include_dir, text):
    try:
        result = parse_text(text, "fuzz.conf", base_dir=include_dir)
    except ConfigError as err:
        assert ":" in str(err) and "; expected " in str(err)
    else:
        assert isinstance(result, ConfigFile)


# -- asterisk.conf ---------------------------------------------------------------------


def test_asterisk_conf_missing_uses_defaults(tmp_path):
    root, etc = tmp_path / "var", tmp_path / "etc"
    etc.mkdir()
    conf = load_asterisk_conf(etc, default_root=root, system_data_dir=tmp_path / "absent")
    d = conf.directories
    assert conf.filename is None
    assert (d.astetcdir, d.astspooldir, d.astdbdir, d.astlogdir, d.astrundir, d.astvarlibdir) == (
        etc, root / "spool", root / "db", root / "log", root / "run", root / "lib")
    assert d.astdatadir == root / "data" and d.sounds_dir == root / "data" / "sounds"
    assert d.astdb_file == root / "db" / "astdb" and d.keys_dir == root / "lib" / "keys"
    assert conf.options.maxcalls == 0 and conf.options.languageprefix is True
    assert conf.options.defaultlanguage == "en" and conf.options.documentation_language == "en_US"


def test_asterisk_conf_system_data_dir_used_when_present(tmp_path):
    system = tmp_path / "share"
    system.mkdir()
    conf = load_asterisk_conf(tmp_path, default_root=tmp_path / "r", system_data_dir=system)
    assert conf.directories.astdatadir == system


def test_asterisk_conf_directories_relative_to_config_dir(tmp_path):
    etc = tmp_path / "etc"
    write(etc, "asterisk.conf", "[directories]\nastspooldir => ../spool\nastlogdir = /abs/log\n"
                                "astvarlibdir => lib\nastdatadir => data\nbogus = 1\n")
    d = load_asterisk_conf(etc, default_root=tmp_path / "root").directories
    assert d.astspooldir == tmp_path / "spool" and d.astlogdir == Path("/abs/log")
    assert d.astvarlibdir == etc / "lib" and d.astdbdir == etc / "lib"  # Asterisk: db follows varlib
    assert d.astkeydir == etc / "data"  # and keys follow the data dir
    assert d.astrundir == tmp_path / "root" / "run"


def test_asterisk_conf_template_directories_are_ignored(tmp_path):
    write(tmp_path, "asterisk.conf", "[directories](!)\nastspooldir => /var/spool/asterisk\n")
    d = load_asterisk_conf(tmp_path, default_root=tmp_path / "r").directories
    assert d.astspooldir == tmp_path / "r" / "spool"


def test_asterisk_conf_options(tmp_path):
    write(tmp_path, "asterisk.conf", (
        "[options]\nverbose = 3\ndebug = yes\nrunuser = asterisk\nrungroup = voip\n"
        "systemname = pbx1\nmaxcalls = 100\nmaxload = 0.9\nlanguageprefix = no\n"
        "transmit_silence_during_record = yes\ndocumentation_language = de_DE\n"
        "defaultlanguage = de\ncache_record_files = yes\nrecord_cache_dir = cache\n"
        "unknown_option = whatever\n"))
    o = load_asterisk_conf(tmp_path, default_root=tmp_path / "r").options
    assert (o.verbose, o.debug, o.runuser, o.rungroup, o.systemname) == (3, 1, "asterisk", "voip", "pbx1")
    assert (o.maxcalls, o.maxload, o.languageprefix, o.transmit_silence) == (100, 0.9, False, True)
    assert (o.documentation_language, o.defaultlanguage) == ("de_DE", "de")
    assert o.cache_record_files is True and o.record_cache_dir == tmp_path / "cache"


def test_asterisk_conf_autosystemname_is_order_dependent(tmp_path):
    write(tmp_path, "asterisk.conf", "[options]\nautosystemname = yes\nsystemname = fixed\n")
    assert load_asterisk_conf(tmp_path, default_root=tmp_path).options.systemname == "fixed"
    write(tmp_path, "asterisk.conf", "[options]\nsystemname = fixed\nautosystemname = yes\n")
    o = load_asterisk_conf(tmp_path, default_root=tmp_path).options
    assert o.autosystemname and o.systemname not in ("", "fixed")


@pytest.mark.parametrize("line", ["maxcalls = lots", "maxcalls = -1", "verbose = 3x", "maxload = high",
                                  "debug = sometimes", "maxload = nan", "transmit_silence = perhaps"])
def test_asterisk_conf_bad_values_are_located(tmp_path, line):
    write(tmp_path, "asterisk.conf", f"[options]\n\n{line}\n")
    with pytest.raises(ConfigError) as info:
        load_asterisk_conf(tmp_path, default_root=tmp_path)
    assert str(info.value).startswith("asterisk.conf:3: ") and "expected" in str(info.value)
