"""The dialplan engine end to end: a real Pbx, real config files, Local channels."""

from __future__ import annotations

import asyncio
import csv
import time
from pathlib import Path

import pytest

from hookflash.engine.cli_core import run_command
from tests.helpers import call, run, running_pbx


def go(tmp_path: Path, extensions: str, target: str, variables=None, **files):  # type: ignore[no-untyped-def]
    async def main():  # type: ignore[no-untyped-def]
        async with running_pbx(tmp_path, extensions, **files) as (pbx, lines):
            chan = await call(pbx, target, variables)
            return chan, lines
    return run(main())


def test_priorities_n_same_and_labels(tmp_path: Path) -> None:
    chan, lines = go(tmp_path, """
        [t]
        exten => 1,1,Set(A=1)
         same => n(second),Set(B=${A}2)
         same => n,Goto(end)
         same => n,Set(SKIPPED=yes)
         same => n(end),Set(C=${B}3)
        """, "1@t")
    assert chan.vars["C"] == "123"
    assert "SKIPPED" not in chan.vars
    assert any("Executing [1@t:5] Set(" in line for line in lines)


def test_lastpri_carries_across_extensions_like_asterisk(tmp_path: Path) -> None:
    # pbx_config's 'n' continues from the previous line, even in a new extension
    chan, _ = go(tmp_path, """
        [t]
        exten => 1,1,NoOp()
        exten => 2,n,Set(X=two)
        exten => 1,2,Goto(2,2)
        """, "1@t")
    assert chan.vars["X"] == "two"


def test_gotoif_branches_and_conditions(tmp_path: Path) -> None:
    chan, _ = go(tmp_path, """
        [t]
        exten => s,1,GotoIf($[1 = 1]?yes:no)
        exten => s,n(yes),Set(R1=yes)
         same => n,GotoIf($["${EMPTY}" = "x"]?bad)
         same => n,Set(R2=fallthrough)
         same => n,GotoIf(0.5?bad:good)
         same => n(bad),Set(R3=bad)
         same => n(good),Set(R4=good)
         same => n,GotoIf(abc?other,1)
        exten => other,1,Set(R5=other)
        """, "s@t")
    assert chan.vars["R1"] == "yes" and chan.vars["R2"] == "fallthrough"
    assert "R3" not in chan.vars  # "0.5" reads as 0, as pbx_checkcondition does
    assert chan.vars["R4"] == "good" and chan.vars["R5"] == "other"


def test_include_order_own_patterns_beat_included_literals(tmp_path: Path) -> None:
    chan, _ = go(tmp_path, """
        [inc]
        exten => 123,1,Set(WHO=included-literal)
        [t]
        include => inc
        exten => _1XX,1,Set(WHO=own-pattern)
        """, "123@t")
    assert chan.vars["WHO"] == "own-pattern"


def test_include_used_when_context_has_no_match_and_timed_include(tmp_path: Path) -> None:
    chan, _ = go(tmp_path, """
        [never]
        exten => 5,1,Set(WHO=never)
        [inc]
        exten => 5,1,Set(WHO=inc)
        [t]
        include => never,00:00-00:00,sun,1,jan
        include => inc
        """, "5@t")
    # the timed include is only active on Sunday Jan 1st at midnight
    assert chan.vars["WHO"] in ("inc", "never")
    if not (time.localtime().tm_mon == 1 and time.localtime().tm_mday == 1):
        assert chan.vars["WHO"] == "inc"


def test_invalid_extension_goes_to_i_and_h_runs_after_hangup(tmp_path: Path) -> None:
    chan, lines = go(tmp_path, """
        [t]
        exten => 1,1,Goto(nosuch,1)
        exten => i,1,Set(INV=${INVALID_EXTEN})
         same => n,Hangup()
        exten => h,1,Set(HANGUPRAN=${EXTEN})
        """, "1@t")
    assert chan.vars["INV"] == "nosuch"
    assert chan.vars["HANGUPRAN"] == "h"
    assert any("Sent into invalid extension 'nosuch'" in line for line in lines)


def test_autofallthrough_hangs_up(tmp_path: Path) -> None:
    chan, lines = go(tmp_path, """
        [t]
        exten => 1,1,Set(A=1)
        """, "1@t")
    assert any("Auto fallthrough" in line for line in lines)
    assert chan.hung_up


def test_while_nested_exitwhile_continuewhile(tmp_path: Path) -> None:
    chan, _ = go(tmp_path, """
        [t]
        exten => 1,1,Set(I=0)
         same => n,Set(OUT=)
         same => n,While($[${I} < 5])
         same => n,Set(I=$[${I} + 1])
         same => n,ExecIf($[${I} = 2]?ContinueWhile())
         same => n,ExecIf($[${I} = 4]?ExitWhile())
         same => n,Set(J=0)
         same => n,While($[${J} < 2])
         same => n,Set(J=$[${J} + 1])
         same => n,Set(OUT=${OUT}${I}${J})
         same => n,EndWhile()
         same => n,EndWhile()
         same => n,Set(DONE=${I})
        """, "1@t")
    assert chan.vars["OUT"] == "11123132"
    assert chan.vars["DONE"] == "4"


def test_gosub_args_return_and_nesting(tmp_path: Path) -> None:
    chan, _ = go(tmp_path, """
        [t]
        exten => 1,1,Set(ARG1=outer)
         same => n,Gosub(sub,s,1(a,b))
         same => n,Set(R=${GOSUB_RETVAL}/${ARG1}/${ARGC})
         same => n,GosubIf($[1]?sub,s,1(x):sub,s,1(y))
         same => n,Set(R2=${GOSUB_RETVAL})
        [sub]
        exten => s,1,Gosub(inner,s,1(${ARG2}))
         same => n,Return(${ARG1}${ARG2}${GOSUB_RETVAL}${ARGC})
        [inner]
        exten => s,1,Return([${ARG1}${ARG2}])
        """, "1@t")
    assert chan.vars["R"] == "ab[b]2/outer/"
    assert chan.vars["R2"] == "x[]1"
    assert chan.stack == []


def test_macro_args_and_result(tmp_path: Path) -> None:
    chan, _ = go(tmp_path, """
        [t]
        exten => 1,1,Macro(m,one,two)
         same => n,Set(AFTER=${ARG1}|${MACRO_EXTEN}|${M})
         same => n,Macro(jump)
         same => n,Set(NOTREACHED=1)
        exten => 2,1,Set(JUMPED=yes)
        [macro-m]
        exten => s,1,Set(M=${ARG1}-${ARG2}-${MACRO_EXTEN}-${MACRO_CONTEXT}-${MACRO_DEPTH})
        [macro-jump]
        exten => s,1,Set(MACRO_RESULT=GOTO:t^2^1)
        """, "1@t")
    assert chan.vars["M"] == "one-two-1-t-1"
    assert chan.vars["AFTER"] == "||one-two-1-t-1"
    assert chan.vars["JUMPED"] == "yes" and "NOTREACHED" not in chan.vars


def test_exec_execif_tryexec(tmp_path: Path) -> None:
    chan, _ = go(tmp_path, """
        [t]
        exten => 1,1,Exec(Set(A=1))
         same => n,ExecIf($[0]?Set(B=t):Set(B=f))
         same => n,ExecIf($[1]?Set(C=t))
         same => n,TryExec(NoSuchApp(x))
         same => n,Set(T=${TRYSTATUS})
        """, "1@t")
    assert (chan.vars["A"], chan.vars["B"], chan.vars["C"], chan.vars["T"]) == ("1", "f", "t", "NOAPP")


def test_inheritance_one_and_two_generations(tmp_path: Path) -> None:
    async def main():  # type: ignore[no-untyped-def]
        async with running_pbx(tmp_path, """
            [t]
            exten => 1,1,Set(_ONE=1)
             same => n,Set(__ALL=2)
             same => n,Set(PLAIN=3)
             same => n,Dial(Local/2@t,5)
            exten => 2,1,Set(DB(test/gen1)=${ONE}|${ALL}|${PLAIN})
             same => n,Dial(Local/3@t,5)
            exten => 3,1,Set(DB(test/gen2)=${ONE}|${ALL}|${PLAIN})
             same => n,Answer()
             same => n,Hangup()
            """) as (pbx, lines):
            chan = await call(pbx, "1@t")
            return chan, pbx.astdb.get("test", "gen1"), pbx.astdb.get("test", "gen2")  # type: ignore[union-attr]
    chan, gen1, gen2 = run(main())
    assert gen1 == "1|2|"  # _ONE reaches the child, PLAIN does not
    assert gen2 == "|2|"  # only __ALL reaches the grandchild
    assert chan.inherit == {"ONE": 1, "ALL": 2}


def _dial_case(tmp_path: Path, dial: str, extra: str = "") -> dict[str, str]:
    chan, _ = go(tmp_path, f"""
        [t]
        exten => s,1,Dial({dial})
         same => n,Set(STATUS=${{DIALSTATUS}})
         same => n,Set(PEER=${{DIALEDPEERNAME}})
        exten => answer,1,Wait(0.05)
         same => n,Answer()
         same => n,Set(__X=y)
         same => n,Hangup()
        exten => slow,1,Wait(0.5)
         same => n,Answer()
         same => n,Hangup()
        exten => busy,1,Busy()
        exten => congested,1,Congestion()
        exten => ring,1,Ringing()
         same => n,Wait(5)
        {extra}
        """, "s@t")
    return chan.vars


def test_dial_answer_first_of_parallel(tmp_path: Path) -> None:
    v = _dial_case(tmp_path, "Local/slow@t&Local/answer@t,5,g")
    assert v["STATUS"] == "ANSWER"
    assert v["PEER"].startswith("Local/answer@t-")


def test_dial_busy_congestion_noanswer_unavailable(tmp_path: Path) -> None:
    assert _dial_case(tmp_path / "a", "Local/busy@t,5")["STATUS"] == "BUSY"
    assert _dial_case(tmp_path / "b", "Local/congested@t,5")["STATUS"] == "CONGESTION"
    assert _dial_case(tmp_path / "c", "Local/ring@t,0.3")["STATUS"] == "NOANSWER"
    assert _dial_case(tmp_path / "d", "Nosuch/thing,1")["STATUS"] == "CHANUNAVAIL"


def test_dial_macro_on_answer_runs_on_called_channel(tmp_path: Path) -> None:
    async def main():  # type: ignore[no-untyped-def]
        async with running_pbx(tmp_path, """
            [t]
            exten => s,1,Set(__TOKEN=abc)
             same => n,Dial(Local/callee@t,5,gM(confirm^hello))
             same => n,Set(STATUS=${DIALSTATUS})
            exten => callee,1,Answer()
             same => n,Wait(0.2)
            [macro-confirm]
            exten => s,1,Set(DB(macro/ran)=${ARG1}-${TOKEN}-${CHANNEL})
            """) as (pbx, lines):
            chan = await call(pbx, "s@t")
            return chan.vars, pbx.astdb.get("macro", "ran")  # type: ignore[union-attr]
    variables, ran = run(main())
    assert variables["STATUS"] == "ANSWER"
    assert ran is not None and ran.startswith("hello-abc-Local/callee@t-") and ran.endswith(";1")


def test_local_optimises_away_unless_n(tmp_path: Path) -> None:
    async def main():  # type: ignore[no-untyped-def]
        async with running_pbx(tmp_path, """
            [t]
            exten => a,1,Dial(Local/b@t,5)
            exten => an,1,Dial(Local/b@t/n,5)
            exten => b,1,Dial(Local/c@t/n,5)
            exten => c,1,Answer()
             same => n,Wait(0.6)
            """) as (pbx, lines):
            task = asyncio.ensure_future(call(pbx, "a@t"))
            await asyncio.sleep(0.3)
            names_opt = [c.name for c in pbx.channels]
            await task
            task = asyncio.ensure_future(call(pbx, "an@t"))
            await asyncio.sleep(0.3)
            names_n = [c.name for c in pbx.channels]
            await task
            return names_opt, names_n, lines
    names_opt, names_n, lines = run(main())
    assert not any(n.startswith("Local/b@t-") for n in names_opt), names_opt
    assert any(n.startswith("Local/b@t-") for n in names_n), names_n
    assert any("optimised away" in line for line in lines)


def test_originate_exten_and_app(tmp_path: Path) -> None:
    async def main():  # type: ignore[no-untyped-def]
        async with running_pbx(tmp_path, """
            [t]
            exten => s,1,Originate(Local/answer@t,exten,t,target,1)
             same => n,Set(S1=${ORIGINATE_STATUS})
             same => n,Originate(Local/answer@t,app,Set,DB(orig/app=ran))
             same => n,Set(S2=${ORIGINATE_STATUS})
             same => n,Originate(Local/busy@t,exten,t,target,1)
             same => n,Set(S3=${ORIGINATE_STATUS})
             same => n,Originate(Bogus/x,exten,t,target,1)
             same => n,Set(S4=${ORIGINATE_STATUS})
            exten => answer,1,Answer()
             same => n,Wait(0.2)
            exten => busy,1,Busy()
            exten => target,1,Set(DB(orig/exten)=${CHANNEL})
            """) as (pbx, lines):
            chan = await call(pbx, "s@t")
            return chan.vars, pbx.astdb.get("orig", "exten")  # type: ignore[union-attr]
    variables, target_chan = run(main())
    assert (variables["S1"], variables["S2"], variables["S3"], variables["S4"]) == (
        "SUCCESS", "SUCCESS", "BUSY", "FAILED")
    assert target_chan is not None and target_chan.endswith(";1")


def test_system_and_trysystem(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    chan, _ = go(tmp_path, f"""
        [t]
        exten => 1,1,System(touch {marker})
         same => n,Set(S1=${{SYSTEMSTATUS}})
         same => n,TrySystem(exit 3)
         same => n,Set(S2=${{SYSTEMSTATUS}})
         same => n,TrySystem(/nonexistent/command)
         same => n,Set(S3=${{SYSTEMSTATUS}})
        """, "1@t")
    assert marker.exists()
    assert (chan.vars["S1"], chan.vars["S2"], chan.vars["S3"]) == ("SUCCESS", "APPERROR", "FAILURE")


def test_unknown_application_hangs_up_that_call_only(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def main():  # type: ignore[no-untyped-def]
        async with running_pbx(tmp_path, """
            [t]
            exten => bad,1,Set(A=1)
             same => n,NoSuchApplication(x)
             same => n,Set(B=2)
            exten => good,1,Wait(0.1)
             same => n,Set(OK=1)
            """) as (pbx, lines):
            bad, good = await asyncio.gather(call(pbx, "bad@t"), call(pbx, "good@t"))
            return bad.vars, good.vars
    bad, good = run(main())
    assert bad == {"A": "1"}
    assert good["OK"] == "1"


def test_unknown_function_logs_and_yields_empty(tmp_path: Path) -> None:
    chan, lines = go(tmp_path, """
        [t]
        exten => 1,1,Set(A=[${NOSUCHFUNC(x)}])
         same => n,Set(B=after)
        """, "1@t")
    assert chan.vars["A"] == "[]" and chan.vars["B"] == "after"
    assert any("Function NOSUCHFUNC not registered" in line and "1@t:1" in line for line in lines)


def test_runaway_goto_loop_is_ended_and_others_keep_running(tmp_path: Path) -> None:
    async def main():  # type: ignore[no-untyped-def]
        async with running_pbx(tmp_path, """
            [general]
            looplimit=20000
            [t]
            exten => loop,1,Goto(loop,1)
            exten => good,1,Wait(0.05)
             same => n,Set(OK=1)
            """) as (pbx, lines):
            loop, good = await asyncio.gather(call(pbx, "loop@t", timeout=30), call(pbx, "good@t"))
            return loop, good, lines
    loop, good, lines = run(main())
    assert good.vars["OK"] == "1"
    assert loop.hung_up
    assert any("Runaway dialplan" in line and "loop@t:1" in line for line in lines)


def test_ten_megabyte_value_is_truncated_with_a_warning(tmp_path: Path) -> None:
    big = "x" * (10 * 1024 * 1024)
    chan, lines = go(tmp_path, """
        [t]
        exten => 1,1,Set(COPY=${BIG}${BIG})
         same => n,Set(LEN=${LEN(${COPY})})
        """, "1@t", {"BIG": big})
    assert len(chan.vars["COPY"]) == (1 << 20) - len("COPY=")  # the whole argument is capped
    assert any("truncated" in line for line in lines)


def test_unterminated_expression_warns_at_load_and_runs(tmp_path: Path) -> None:
    chan, lines = go(tmp_path, """
        [t]
        exten => 1,1,Set(A=$[1 + 2)
         same => n,Set(B=ok)
        """, "1@t")
    assert any("extensions.conf:3" in line and "missing ']'" in line for line in lines)
    assert chan.vars["B"] == "ok"


def test_corrupt_conf_line_keeps_running_dialplan_on_reload(tmp_path: Path) -> None:
    async def main():  # type: ignore[no-untyped-def]
        async with running_pbx(tmp_path, """
            [t]
            exten => 1,1,Set(V=old)
            """) as (pbx, lines):
            (pbx.config_dir / "extensions.conf").write_text("[t]\nexten => 1,1,Set(V=new)\nthis line is broken\n")
            out = await run_command(pbx, "dialplan reload")
            chan = await call(pbx, "1@t")
            return out, chan.vars["V"]
    out, value = run(main())
    assert "not reloaded" in out and "extensions.conf:3" in out and "expected" in out
    assert value == "old"


def test_reload_is_atomic_calls_finish_on_old_dialplan(tmp_path: Path) -> None:
    async def main():  # type: ignore[no-untyped-def]
        async with running_pbx(tmp_path, """
            [t]
            exten => 1,1,Wait(0.3)
             same => n,Set(V=old)
            """) as (pbx, lines):
            task = asyncio.ensure_future(call(pbx, "1@t"))
            await asyncio.sleep(0.1)
            (pbx.config_dir / "extensions.conf").write_text(
                "[t]\nexten => 1,1,Wait(0.01)\n same => n,Set(V=new)\n")
            out = await run_command(pbx, "dialplan reload")
            first = await task
            second = await call(pbx, "1@t")
            return out, first.vars["V"], second.vars["V"]
    out, first, second = run(main())
    assert out.strip() == "Dialplan reloaded."
    assert (first, second) == ("old", "new")


def test_cdr_row_written_in_asterisk_column_order(tmp_path: Path) -> None:
    async def main():  # type: ignore[no-untyped-def]
        async with running_pbx(tmp_path, """
            [t]
            exten => 1,1,Answer()
             same => n,Set(CDR(userfield)=hello)
             same => n,Wait(1.1)
             same => n,Set(BILL=${CDR(billsec)})
             same => n,Hangup()
            exten => h,1,Set(HBILL=${CDR(billsec)})
            """, cdr_csv_conf="[csv]\nloguniqueid=yes\nloguserfield=yes\n") as (pbx, lines):
            chan = await call(pbx, "1@t")
            return chan, Path(pbx.dirs.astlogdir) / "cdr-csv" / "Master.csv"
    chan, master = run(main())
    rows = list(csv.reader(master.open()))
    row = [r for r in rows if r[5] == chan.name][0]
    assert len(row) == 18
    accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata, start, answer, end, \
        duration, billsec, disposition, amaflags, uniqueid, userfield = row
    assert (dst, dcontext, channel) == ("h", "t", chan.name) or (dst, dcontext) == ("1", "t")
    assert disposition == "ANSWERED" and amaflags == "DOCUMENTATION"
    assert int(billsec) >= 1 and int(duration) >= int(billsec)
    assert chan.vars["HBILL"] == billsec
    assert userfield == "hello" and uniqueid == chan.uniqueid
    assert lastapp in ("Hangup", "Set")
    time.strptime(start, "%Y-%m-%d %H:%M:%S")


def test_astdb_functions_and_console(tmp_path: Path) -> None:
    async def main():  # type: ignore[no-untyped-def]
        async with running_pbx(tmp_path, """
            [t]
            exten => 1,1,Set(DB(extension/3001/device)=0000FFFF0001)
             same => n,Set(E1=${DB_EXISTS(extension/3001/device)}:${DB_RESULT})
             same => n,Set(E2=${DB_EXISTS(extension/3001/nothing)})
             same => n,Set(V=${DB(extension/3001/device)})
             same => n,Set(DB(extension/3001/calendar)=cal)
             same => n,Set(K=${DB_KEYS(extension/3001)})
             same => n,Set(D=${DB_DELETE(extension/3001/calendar)})
            """) as (pbx, lines):
            chan = await call(pbx, "1@t")
            outs = [await run_command(pbx, c) for c in (
                "database put fam key value one", "database put fam key 'value one'",
                "database get fam key", "database show fam", "database show",
                "database del fam key", "database del fam key", "database deltree extension",
                "database get fam key")]
            return chan.vars, outs
    v, outs = run(main())
    assert v["E1"] == "1:0000FFFF0001" and v["E2"] == "0" and v["V"] == "0000FFFF0001"
    assert v["K"] == "calendar,device" and v["D"] == "cal"
    assert outs[0].startswith("Usage:")
    assert outs[1] == "Updated database successfully\n"
    assert outs[2] == "Value: value one\n"
    assert outs[3] == f"{'/fam/key':<50s}: {'value one':<25s}\n1 results found.\n"
    assert "/extension/3001/device" in outs[4] and "2 results found." in outs[4]
    assert outs[5] == "Database entry removed.\n" and outs[6] == "Database entry does not exist.\n"
    assert outs[7] == "1 database entries removed.\n"
    assert outs[8] == "Database entry not found.\n"


def test_gotoiftime_and_iftime(tmp_path: Path) -> None:
    chan, _ = go(tmp_path, """
        [t]
        exten => 1,1,GotoIfTime(*,*,*,*?yes,1:no,1)
        exten => yes,1,GotoIfTime(00:00-00:00,sun,1,jan?no,1)
         same => n,Set(R=yes)
        exten => no,1,Set(R=no)
        """, "1@t")
    now = time.localtime()
    if not (now.tm_mon == 1 and now.tm_mday == 1):
        assert chan.vars["R"] == "yes"


def test_console_commands_layouts(tmp_path: Path) -> None:
    async def main():  # type: ignore[no-untyped-def]
        async with running_pbx(tmp_path, """
            [t]
            exten => 1,1,NoOp(hi)
             same => n(lbl),Wait(0.5)
            exten => _2X.,1,NoOp()
            include => other
            [other]
            exten => 9,hint,Local/9@other
            """) as (pbx, lines):
            task = asyncio.ensure_future(call(pbx, "1@t"))
            await asyncio.sleep(0.2)
            channels = await run_command(pbx, "core show channels")
            concise = await run_command(pbx, "core show channels concise")
            await task
            outs = {c: await run_command(pbx, c) for c in (
                "dialplan show t", "dialplan show nosuch", "core show application Dial",
                "core show function CDR", "core show applications like goto", "module show like app_dial",
                "module unload app_dial", "core show application  Dial", "module load app_dial.so",
                "core set verbose 5", "core set verbose off", "help database", "bogus command",
                "core show version")}
            return channels, concise, outs
    channels, concise, outs = run(main())
    header, *rows = channels.splitlines()
    assert header == f"{'Channel':<20} {'Location':<20} {'State':<7} {'Application(Data)':<30}"
    assert any(r.startswith("Local/1@t-") and "1@t:2" in r and "Wait(0.5)" in r for r in rows)
    assert "2 active channels" in channels and "calls processed" in channels
    assert any(line.split("!")[1:4] == ["t", "1", "2"] for line in concise.splitlines())
    show = outs["dialplan show t"]
    assert "[ Context 't' created by 'pbx_config' ]" in show
    assert "  '1' =>            1. NoOp(hi)" in show
    assert "   [lbl]" in show and "Include =>        'other'" in show
    assert "-= 2 extensions (3 priorities) in 1 context. =-" in show
    assert outs["dialplan show nosuch"] == "There is no existence of 'nosuch' context\n"
    assert "-= Info about application 'Dial' =-" in outs["core show application Dial"]
    assert "[Syntax]\nCDR(name[,options])" in outs["core show function CDR"]
    assert "GotoIf" in outs["core show applications like goto"]
    assert "app_dial.so" in outs["module show like app_dial"] and "1 modules loaded" in outs["module show like app_dial"]
    assert outs["module unload app_dial"] == "Unloaded app_dial\n"
    assert "not registered" in outs["core show application  Dial"]
    assert outs["module load app_dial.so"] == "Loaded app_dial.so\n"
    assert outs["core set verbose 5"] == "Console verbose was 3 and is now 5.\n"
    assert outs["core set verbose off"] == "Console verbose was 5 and is now OFF.\n"
    assert "database show" in outs["help database"]
    assert outs["bogus command"].startswith("No such command 'bogus command'")
    assert outs["core show version"].startswith("hookflash ")


def test_module_unload_removes_application(tmp_path: Path) -> None:
    async def main():  # type: ignore[no-untyped-def]
        async with running_pbx(tmp_path, "[t]\nexten => 1,1,Set(A=1)\n") as (pbx, lines):
            await run_command(pbx, "module unload app_system")
            gone = pbx.registry.application("System") is None
            core = await run_command(pbx, "module unload pbx_config")
            await run_command(pbx, "module load app_system")
            back = pbx.registry.application("System") is not None
            return gone, core, back
    gone, core, back = run(main())
    assert gone and back
    assert "core module" in core


def test_dialplan_show_exten_filter_and_modules_conf_noload(tmp_path: Path) -> None:
    async def main():  # type: ignore[no-untyped-def]
        async with running_pbx(tmp_path, """
            [t]
            exten => 100,1,NoOp(a)
            exten => _2XX,1,NoOp(b)
            """, modules_conf="[modules]\nautoload=yes\nnoload => app_system.so\n") as (pbx, lines):
            shown = await run_command(pbx, "dialplan show 250@t")
            return shown, pbx.registry.application("System"), pbx.registry.application("Dial")
    shown, system, dial = run(main())
    assert "'_2XX' =>" in shown and "'100' =>" not in shown
    assert system is None and dial is not None


def test_caller_id_matching_extensions(tmp_path: Path) -> None:
    async def main():  # type: ignore[no-untyped-def]
        async with running_pbx(tmp_path, """
            [t]
            exten => 100/_555XXXX,1,Set(WHO=vip)
            exten => 100,1,Set(WHO=anyone)
            """) as (pbx, lines):
            results = []
            for cid in ("1234", "5551234", "1234"):
                one = await pbx.request("Local/100@t/n")
                one.caller.num = cid
                two = one.tech.pair.chan  # type: ignore[attr-defined]
                await one.tech.call(one, "100@t", 5)
                while not two.hung_up:
                    await asyncio.sleep(0.005)
                results.append(two.vars["WHO"])
                await one.hangup()
            return results
    assert run(main()) == ["anyone", "vip", "anyone"]


def test_dial_limit_ends_the_call(tmp_path: Path) -> None:
    async def main():  # type: ignore[no-untyped-def]
        async with running_pbx(tmp_path, """
            [t]
            exten => s,1,Dial(Local/callee@t,5,gL(400))
             same => n,Set(STATUS=${DIALSTATUS})
             same => n,Set(ANSWERED=${ANSWEREDTIME})
            exten => callee,1,Answer()
             same => n,Wait(5)
            """) as (pbx, lines):
            start = time.monotonic()
            chan = await call(pbx, "s@t")
            return chan.vars, time.monotonic() - start, lines
    variables, elapsed, lines = run(main())
    assert variables["STATUS"] == "ANSWER" and elapsed < 3
    assert any("Call limit of 0.4 s reached" in line for line in lines)


def test_dial_T_lets_the_caller_blind_transfer(tmp_path: Path) -> None:
    async def main():  # type: ignore[no-untyped-def]
        async with running_pbx(tmp_path, """
            [t]
            exten => s,1,Dial(Local/callee@t/n,5,T)
            exten => callee,1,Answer()
             same => n,Wait(5)
            exten => 500,1,Set(DB(xfer/landed)=${CHANNEL})
             same => n,Hangup()
            """) as (pbx, lines):
            one = await pbx.request("Local/s@t/n")
            await one.tech.call(one, "s@t", 5)
            await asyncio.sleep(0.3)
            for digit in "#500#":
                await one.send_digit(digit)
            await asyncio.sleep(0.8)
            landed = pbx.astdb.get("xfer", "landed")  # type: ignore[union-attr]
            await one.hangup()
            return landed, lines
    landed, lines = run(main())
    assert landed is not None and landed.startswith("Local/callee@t-")
    assert any("blind-transfers to 500@t" in line for line in lines)
