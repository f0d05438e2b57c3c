"""Conformance tests for hookflash.dialplan.expr ($[...] expressions).

Every expected value below is what Asterisk's ast_expr2 produces; each row was
cross-checked against the standalone build of main/ast_expr2.y +
main/ast_expr2.fl (utils' check_expr2).  Rows marked "test_expr.c" come from
Asterisk's own unit test tests/test_expr.c.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookflash.dialplan.expr import ExprSyntaxError, evaluate, evaluate_safe

CASES = [
    # --- tests/test_expr.c --------------------------------------------------
    ("2 + 2", "4"),
    ("      2     +       2            ", "4"),
    ("", ""),  # empty expression: grammar's empty `start` rule -> ""
    ("2 - 4", "-2"),
    ("4 - 2", "2"),
    ("-4 - -2", "-2"),
    ("4 + 2 * 8", "20"),
    ("(4 + 2) * 8", "48"),
    ("4 + (2 * 8)", "20"),
    ("4 + (2 * 8) ? 3 :: 6", "3"),  # '?' binds loosest
    ("4 + 8 / 2", "8"),
    ("FLOOR(4 + 8 / 3)", "6"),
    ("(4+8) / 3", "4"),
    ("4 + 8 % 3", "6"),
    ("4 + 9 % 3", "4"),
    ("(4+9) %3", "1"),
    ("(4+8) %3", "0"),
    ("(4+9)% 3", "1"),
    ("4 & 4", "4"),
    ("0 & 4", "0"),
    ("0 & 0", "0"),
    ("2 | 0", "2"),
    ("2 | 4", "2"),
    ("0 | 0", "0"),
    ("!0 | 0", "1"),
    ("!4 | 0", "0"),
    ("4 | !0", "4"),
    ("!4 | !0", "1"),
    ("0", "0"),
    ("!0", "1"),
    ("00", "00"),  # a lone numeric token is returned verbatim
    ("!00", "1"),
    ("1", "1"),
    ("!1", "0"),
    ("01", "01"),
    ("!01", "0"),
    ("3 < 4", "1"),
    ("4 < 3", "0"),
    ("3 > 4", "0"),
    ("4 > 3", "1"),
    ("3 = 3", "1"),
    ("3 = 4", "0"),
    ("3 != 3", "0"),
    ("3 != 4", "1"),
    ("3 >= 4", "0"),
    ("3 >= 3", "1"),
    ("4 >= 3", "1"),
    ("3 <= 4", "1"),
    ("4 <= 3", "0"),
    ("4 <= 4", "1"),
    ("3 > 4 & 4 < 3", "0"),
    ("4 > 3 & 3 < 4", "1"),
    ("x = x", "1"),
    ("y = x", "0"),
    ("x != y", "1"),
    ("x != x", "0"),
    ('"Something interesting" =~ interesting', "11"),  # unanchored: match length
    ('"Something interesting" =~ Something', "9"),
    ('"Something interesting" : Something', "9"),
    ('"Something interesting" : interesting', "0"),  # ':' must match at offset 0
    ('"Something interesting" =~ "interesting"', "11"),
    ('"Something interesting" : "Something"', "9"),
    ('"Something interesting" =~ (interesting)', "11"),  # () are expression parens here
    ('"Something interesting" : (interesting)', "0"),
    ('"Something interesting" =~ "\\(interesting\\)"', "0"),  # ERE: \( is a literal paren
    ('"Something interesting" : "\\(Something\\)"', "0"),
    ('"011043567857575" : "011\\(..\\)"', "0"),
    ('"Something interesting" =~ "(interesting)"', "interesting"),  # capture group returned
    ('"Something interesting" : "(Something)"', "Something"),
    ('"Something interesting" : "(interesting)"', ""),  # no match + group -> ""
    ('"011043567857575" : "011(..)"', "04"),
    ('"9011043567857575" : "011(..)"', ""),
    ('"011043567857575" =~ "011(..)"', "04"),
    ('"9011043567857575" =~ "011(..)"', "04"),
    ("3", "3"),
    ("something", "something"),
    ("043", "043"),
    ("${GLOBAL(ULKOPREFIX)}9${x}", "${GLOBAL(ULKOPREFIX)}9${x}"),  # unsubstituted ${} is one token
    ("512059${x}", "512059${x}"),
    # --- tokenizer ----------------------------------------------------------
    ("1+1", "2"),  # operators split tokens, no spaces needed
    ("1 +1", "2"),
    ("41+1", "42"),
    ("10-3", "7"),
    ("5==5", "1"),  # '==' is an alias of '='
    ("1||0", "1"),  # '||' alias of '|'
    ("1&&2", "1"),  # '&&' alias of '&'
    ('"foo"', '"foo"'),  # ast_expr2.fl keeps the double quotes in the token
    ('"foo bar"', '"foo bar"'),
    ('"foo" = "foo"', "1"),
    ('"foo" = foo', "0"),  # quotes are part of the compared text
    ('"5" = 5', "0"),  # quoted numbers are strings: '"5"' vs '5'
    ('"10" < "9"', "1"),  # string comparison (strcoll)
    ("10 < 9", "0"),  # numeric comparison
    ("abc < abd", "1"),
    ("B < a", "1"),  # C.UTF-8 collation: byte order
    ("1.50", "1.50"),  # numeric string returned verbatim...
    ("1.50 + 0", "1.5"),  # ...until arithmetic converts it
    ("(1.50)", "1.50"),
    ("007 + 1", "8"),
    ("1.5 = 1.50", "1"),  # numeric comparison of numeric strings
    ("1.50 = abc", "0"),
    ("123abc", "123abc"),  # longest flex match: a word, not a number
    ("1.", "1."),  # '1.' is a word (string)
    ("1. + 1", "1"),  # ... so it is non-numeric
    (".5 + 1", "1"),  # '.5' is a word too: non-numeric
    ("1e5 + 1", "1"),  # no exponent syntax: '1e5' is a string
    ("0x10 + 1", "1"),  # no hex
    ("a-b", "0"),  # '-' splits words: a - b, both non-numeric
    ("SIP/foo", "0"),  # '/' is division: non-numeric -> 0
    ("foo@bar.com", "foo@bar.com"),  # @ . are word characters
    ("a'b;c#d^e\\f", "a'b;c#d^e\\f"),
    ("$a", "$a"),  # '$' not followed by '{' is a word character
    ("é = é", "1"),  # bytes >= 0x80 are word characters
    ("a~b", "a"),  # stray '~' is skipped by flex, then "a b" is a syntax error
    ("[1] + 1", "2"),  # '[' ']' are silently skipped by the scanner
    ("{5}", "5"),
    ('"unterminated', "unterminated"),  # a lone '"' is skipped
    ("\t1\r\n+\n2", "3"),  # tab, CR, LF are whitespace
    ("1 ~~ 2", "12"),  # '~~' concatenation
    ('"a b" ~~ "c"', "a bc"),  # ~~ strips the quotes
    # --- precedence & associativity ------------------------------------------
    ("2 + 3 * 4", "14"),
    ("2 * 3 + 4", "10"),
    ("10 - 4 - 3", "3"),  # left associative
    ("100 / 10 / 5", "2"),
    ("2 * 3 % 4", "2"),  # same level, left to right
    ("1 < 2 < 3", "1"),  # (1<2)<3
    ("3 > 2 > 1", "0"),  # (3>2)>1 = 1>1
    ("1 = 1 = 1", "1"),
    ("1 + 1 = 2", "1"),  # arithmetic binds tighter than comparison
    ("1 = 1 & 2 = 2", "1"),
    ("0 & 1 | 1", "1"),  # & binds tighter than |
    ("1 | 0 & 0", "1"),
    ("-2 * 3", "-6"),
    ("- 2 * 3", "-6"),
    ("--5", "5"),
    ("- - 5", "5"),
    ("1 - -1", "2"),
    ("2 * -3", "-6"),
    ("!0 + 1", "2"),  # unary ! binds tighter than +
    ("!(0 + 1)", "0"),
    ("!!5", "1"),
    ("-abc : a", "-1"),  # ':' binds tighter than unary minus: -(abc : a) = -(1)
    ("abc : a ~~ b", "1b"),  # ':' and '~~' same level, left assoc
    ("1 ? 2 :: 3", "2"),
    ("0 ? 2 :: 3", "3"),
    ("1 ? 2 :: 3 + 4", "2"),
    ("0 ? 2 :: 3 + 4", "7"),
    ("1 | 0 ? yes :: no", "yes"),
    ("0 ? a :: 0 ? b :: c", "c"),  # (0?a::0) ? b :: c
    ("1 ? a :: 0 ? b :: c", "b"),  # left assoc: (1?a::0)=a -> a ? b :: c
    ("1 ? 0 ? x :: y :: z", "y"),  # nested in the middle operand
    ("(1 ? 2 :: 3) + 1", "3"),
    # --- arithmetic: long double results --------------------------------------
    ("3/2", "1.5"),
    ("1/3", "0.333333333333333333"),  # %.18Lg of a long double
    ("2/3", "0.666666666666666667"),
    ("-7/2", "-3.5"),
    ("1/4", "0.25"),
    ("22/7", "3.14285714285714286"),
    ("1 / 1024", "0.0009765625"),
    ("1 / 3000000", "3.33333333333333333e-07"),  # %g switches to exponent below 1e-4
    ("0.00001 + 0", "1e-05"),
    ("0.0001 + 0", "0.0001"),
    ("0.1 + 0.2", "0.3"),  # long double + 18 digits hides the binary error
    ("1.1 * 1.1", "1.21"),
    ("2.1+4.2", "6.3"),
    ("2.5*2", "5"),  # integral results print without decimal point
    ("10%3", "1"),
    ("-7 % 3", "-1"),  # fmodl: sign of the dividend
    ("7 % -3", "1"),
    ("7.5 % 2", "1.5"),
    ("-7.5 % 2", "-1.5"),
    ("123456789012345678 + 1", "123456789012345679"),
    ("999999999999999999 + 1", "1e+18"),  # %.18Lg: 19-digit integers use exponent form
    ("1234567890123456789 + 1", "1.23456789012345679e+18"),
    ("12345678901234567890", "12345678901234567890"),  # untouched token stays verbatim
    ("12345678901234567890 + 0", "1.23456789012345679e+19"),
    ("99999999999999999999 * 99999999999999999999", "1e+40"),
    ("5 - 5", "0"),
    ("-0", "-0"),  # IEEE negative zero survives printf
    ("- 0", "-0"),
    ("-(5 - 5)", "-0"),
    ("0 * -5", "-0"),
    ("0 / -3", "-0"),
    ("-4 % 2", "-0"),
    ("-0 + -0", "-0"),
    ("-0 - 0", "-0"),
    ("0 - 0", "0"),
    # --- non-numeric operands (Asterisk warns "non-numeric argument") ----------
    ("abc + 5", "5"),  # left non-numeric: result is the right operand
    ("5 + abc", "5"),  # right non-numeric: left operand (no warning in Asterisk)
    ("abc + abc", "0"),
    ("007 + abc", "7"),  # the numeric side is converted
    ("abc - 5", "-5"),  # 0 - b
    ("5 - abc", "5"),
    ("abc * 2", "0"),
    ("2 * abc", "0"),
    ("abc / 2", "0"),
    ("2 / abc", "2147483647"),  # op_div: bad divisor -> INT_MAX
    ("5 / 0", "2147483647"),  # division by zero -> INT_MAX
    ("0 / 0", "2147483647"),
    ("5 % 0", "0"),  # remainder by zero returns the (zero) divisor
    ("5 % abc", "0"),
    ("-abc", "0"),
    ('-"5"', "0"),  # quoted number is a string
    ('"1" + 1', "1"),
    # --- | & ! ----------------------------------------------------------------
    ("abc | def", "abc"),
    ("0 | def", "def"),
    ("007 | 1", "7"),  # is_zero_or_null() converts the numeric string
    ("0.0 | x", "x"),  # 0.0 counts as zero
    ('"" | x', '""'),  # '""' (two quote chars) is not empty
    ('"0" | x', '"0"'),
    ("abc & def", "abc"),
    ("abc & 0", "0"),
    ("007 & 5", "7"),
    ("!abc", "1"),  # ! on a string uses atoi(): atoi("abc") = 0
    ("!0.5", "1"),  # atoi("0.5") = 0
    ("!(0.5 + 0)", "0"),  # a real number 0.5 is non-zero
    ("!5abc", "0"),  # atoi("5abc") = 5
    ('!"5"', "1"),  # atoi('"5"') = 0
    ("!4294967296", "1"),  # atoi() truncates to int: 0
    ("!-0", "1"),
    # --- ternary condition truthiness -----------------------------------------
    ('"0" ? a :: b', "a"),  # '"0"' is a non-empty string, not zero
    ('"" ? a :: b', "b"),  # the literal '""' token counts as empty
    ("abc ? a :: b", "a"),
    ("0.0 ? a :: b", "b"),
    ("00 ? a :: b", "b"),
    ("1 - 1 ? a :: b", "b"),
    # --- regex ':' and '=~' (POSIX ERE via regcomp) ---------------------------
    ("12345 : 123", "3"),  # no group: length of the match
    ("12345 : 234", "0"),  # anchored at the start
    ("12345 =~ 234", "3"),
    ('12345 : "(23)"', ""),
    ('12345 : "1(23)"', "23"),
    ('12345 =~ "(3.)"', "34"),
    ('"abc" : "a(x)?"', "1"),  # group did not participate -> match length
    ('"abc" =~ "(x)?c"', "1"),
    ('"abc" : ""', "0"),  # empty regex matches empty string: length 0
    ('"" : "(a*)"', ""),
    ('abc : ".*"', "3"),
    ('"15551234567" : "1([0-9]{3})"', "555"),  # intervals are ERE
    ('"555-1234" : "[[:digit:]]+"', "3"),  # POSIX classes
    ('"abc" =~ "\\d"', "0"),  # glibc: \d is just 'd'
    ('"abd" =~ "b\\d"', "2"),
    ('"a b" =~ "\\s"', "1"),  # GNU \s works
    ('"abab" : "(ab)\\1"', "ab"),  # back-references work
    ('"a]b" : "a[]]b"', "3"),  # ']' first in a bracket is literal
    ('"a\\b" : "a[\\]b"', "3"),  # backslash is literal inside brackets
    ('"aaa" : "a+?"', "3"),  # not lazy: glibc stacks '+' and '?'
    ('"a)" : "a)"', "2"),  # unmatched ')' is literal
    ('abc : "*a"', ""),  # regcomp() error -> ""
    ('abc : "a{x"', ""),  # regcomp() error -> ""
    ('abc : "[a"', ""),
    ('"a.b" : "a\\.b"', "3"),
    ('"A1" : "[[:upper:]][[:digit:]]"', "2"),
    ('"x" : "(a|x)"', "x"),
    ("5 : 5", "1"),
    ("123 : 1 + 1", "2"),  # ':' binds tighter than '+'
    ('"2125551234" : "212(.*)" = 5551234', "1"),  # captured digits compare numerically
    # --- functions --------------------------------------------------------------
    ("FLOOR(2.4)", "2"),
    ("FLOOR(2.6)", "2"),
    ("FLOOR(-2.5)", "-3"),
    ("CEIL(2.4)", "3"),
    ("CEIL(-0.5)", "-0"),  # ceill keeps the sign of zero
    ("ROUND(2.5)", "3"),  # roundl: half away from zero
    ("ROUND(-2.5)", "-3"),
    ("RINT(2.5)", "2"),  # rintl: half to even
    ("RINT(3.5)", "4"),
    ("TRUNC(2.6)", "2"),
    ("TRUNC(-2.6)", "-2"),
    ("ABS(-5.5)", "5.5"),
    ("ABS(-0)", "-0"),  # ABS only negates values < 0
    ("SQRT(4)", "2"),
    ("SQRT(2)", "1.41421356237309505"),
    ("SQRT(2)*SQRT(2)", "2"),
    ("SQRT(-1)", "-nan"),  # x86 default NaN has the sign bit set
    ("LOG(-1)", "nan"),
    ("LOG(0)", "-inf"),
    ("POW(10.0,4.0)", "10000"),
    ("POW(2,64)", "1.84467440737095516e+19"),  # 20 digits -> exponent form
    ("POW(2,-1)", "0.5"),
    ("POW(2,0.5)", "1.41421356237309505"),
    ("POW(10,5000)", "inf"),
    ("POW(-8,0.5)", "-nan"),
    ("EXP(1.0)", "2.71828182845904524"),
    ("EXP2(10)", "1024"),
    ("EXP10(3)", "1000"),
    ("LOG(10)", "2.30258509299404568"),
    ("LOG2(10)", "3.32192809488736235"),
    ("LOG10(1000)", "3"),
    ("REMAINDER(13,3)", "1"),
    ("REMAINDER(7,2)", "-1"),  # remainderl rounds the quotient to even
    ("COS(0)", "1"),
    ("SIN(0)", "0"),
    ("ATAN(0)", "0"),
    ("FLOOR(4 + 8 / 3) + 1", "7"),
    ("FLOOR(2.4, 3)", "0"),  # wrong number of args: warning, 0
    ("REMAINDER(5)", "0"),
    ("POW(2,3,4)", "0"),
    ("FLOOR(1,)", "0"),  # trailing comma adds an empty argument
    ("MATH(3*9)", "0"),  # unknown function, no channel: 0
    ("foo(1)", "0"),  # lower-case name can never be a function: 0
    ("5(3)", "0"),  # any TOKEN followed by '(' is a function call
    # --- syntax errors: value Asterisk substitutes ----------------------------
    ("1 +", "0"),  # error inside an unfinished construct: io.val stays NULL -> "0"
    ("1 + (", "0"),
    ("(1 + 2", "0"),
    ("()", "0"),
    ("-", "0"),
    ("!", "0"),
    ("1 ?", "0"),
    ("1 ? 2", "0"),
    ("1 ? 2 ::", "0"),
    ("FOO()", "0"),  # arglist needs at least one expression
    ("FOO(,1)", "0"),
    ("(1 2)", "0"),
    ("= 1", ""),  # "$[${EMPTY} = 1]": bad first token -> empty `start` reduced -> ""
    ("+1", ""),  # "+1555..." numbers: '+' cannot start an expression
    ("* 2", ""),
    (")", ""),
    (":: x", ""),
    ("== foo", ""),
    ("1 2", "1"),  # complete expression then junk: bison's default
    ("1 + 1 2 = *", "2"),  #   reductions store the value of what was parsed
    ("a b c", "a"),
    ("10 ::", "10"),
    ("1 ? 2 :: 3 4", "2"),
    ("(1) (2)", "1"),
    ("1, 2", "1"),  # ',' only separates function arguments
    ("${X} 1", "${X} 1"),  # flex unput() quirk: a ${..} token ends at end of input
    ("abc : a(.)c", "0"),  # unquoted regex parens are expression syntax
]


@pytest.mark.parametrize(("expr", "expected"), CASES, ids=[repr(c[0]) for c in CASES])
def test_conformance(expr: str, expected: str) -> None:
    result, _err = evaluate_safe(expr)
    assert result == expected


SYNTAX_ERRORS = [
    "1 +", "1 + (", "(1 + 2", "()", "-", "!", "1 ?", "1 ? 2", "1 ? 2 ::", "FOO()",
    "FOO(,1)", "(1 2)", "= 1", "+1", "* 2", ")", ":: x", "== foo", "1 2",
    "1 + 1 2 = *", "a b c", "10 ::", "1 ? 2 :: 3 4", "(1) (2)", "1, 2", "${X} 1",
    "abc : a(.)c", "a~b",
]


@pytest.mark.parametrize("expr", SYNTAX_ERRORS)
def test_syntax_errors_are_reported(expr: str) -> None:
    result, err = evaluate_safe(expr)
    assert err is not None and "syntax error" in err
    with pytest.raises(ExprSyntaxError) as info:
        evaluate(expr)
    assert info.value.message == err
    assert info.value.result == result
    assert 0 <= info.value.position <= len(expr)


def test_error_position_and_caret() -> None:
    with pytest.raises(ExprSyntaxError) as info:
        evaluate("1 +")
    assert info.value.position == 3
    assert info.value.message.endswith("1 +\n   ^")
    with pytest.raises(ExprSyntaxError) as info:
        evaluate("1 2")
    assert info.value.position == 2


def test_no_error_for_valid_expressions() -> None:
    for expr, _ in CASES:
        if expr not in SYNTAX_ERRORS:
            assert evaluate_safe(expr)[1] is None, expr


@pytest.mark.parametrize(
    ("expr", "warning"),
    [
        ("abc + 5", "non-numeric argument"),
        ("5 - abc", "non-numeric argument"),
        ("abc * 2", "non-numeric argument"),
        ("-abc", "non-numeric argument"),
        ("5 / 0", "division by zero"),
        ("5 % 0", "div by zero"),
        ('abc : "[a"', "regcomp() error"),
        ("FLOOR(1, 2)", "Wrong args to FLOOR() function"),
        ("MATH(1)", "MATH"),
    ],
)
def test_warnings(expr: str, warning: str) -> None:
    seen: list[str] = []
    evaluate(expr, warn=seen.append)
    assert any(warning in w for w in seen), seen


def test_no_warning_when_right_operand_of_plus_is_non_numeric() -> None:
    seen: list[str] = []
    assert evaluate("5 + abc", warn=seen.append) == "5"
    assert seen == []  # op_plus only warns about the left operand


def test_dialplan_function_callback() -> None:
    calls: list[tuple[str, str]] = []

    def call(name: str, args: str) -> str:
        calls.append((name, args))
        table = {"LEN": str(len(args)), "ECHO": args, "EMPTY": "", "SPACED": " -12 "}
        return table[name] if name in table else _raise(name)

    def _raise(name: str) -> str:
        raise LookupError(name)

    assert evaluate("LEN(hello) + 1", call) == "6"
    assert evaluate('ECHO("a b",1/2,x)', call) == '"a b",0.5,x'  # quotes kept, numbers %.18Lg
    assert evaluate("ECHO(007)", call) == "7"  # numeric-looking results become numbers
    assert evaluate("ECHO(1,,2)", call) == "1,,2"  # empty argument kept; not numeric
    assert evaluate("SPACED(x)", call) == "-12"  # only [-0-9. \t]: strtold() -> number
    assert evaluate("EMPTY(x) + 1", call) == "1"  # "" counts as numeric 0
    assert evaluate("ECHO(abc) = abc", call) == "1"
    seen: list[str] = []
    assert evaluate("NOPE(1)", call, warn=seen.append) == "0"
    assert seen and "NOPE" in seen[0]
    assert ("LEN", "hello") in calls
    # built-ins never reach the callback
    calls.clear()
    assert evaluate("FLOOR(2.5)", call) == "2"
    assert calls == []


def test_ternary_evaluates_both_branches() -> None:
    calls: list[str] = []

    def call(name: str, args: str) -> str:
        calls.append(name)
        return "1"

    assert evaluate("1 ? A(x) :: B(x)", call) == "1"
    assert calls == ["A", "B"]  # Asterisk reduces both operands before op_cond


def test_fast_path_matches_general_path() -> None:
    for a in (0, 1, 7, 41, 100, 999999999999999999):
        for b in (1, 2, 3, 10, 999999999999999999):
            for op in ("+", "-", "*", "/", "%", "<", ">", "<=", ">=", "=", "!="):
                fast = evaluate(f"{a} {op} {b}")
                slow = evaluate(f"({a}) {op} ({b})")
                assert fast == slow, (a, op, b)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200))
def test_evaluate_safe_never_raises(text: str) -> None:
    result, err = evaluate_safe(text)
    assert isinstance(result, str)
    assert err is None or isinstance(err, str)


_ALPHABET = st.sampled_from(
    list("0123456789abcXYZ .\"'()*+-/%<>=!&|?:,~${}[]^\\#@_é\t")
    + ["::", "=~", "~~", "FLOOR(", "POW(", "${X}", "1.5", "007"]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_ALPHABET, max_size=40).map("".join))
def test_evaluate_safe_never_raises_on_expression_like_text(text: str) -> None:
    result, err = evaluate_safe(text)
    assert isinstance(result, str)
