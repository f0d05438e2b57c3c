"""Call origination on one process: the call file format, the spooler (pbx_spool) with
Local channels, Originate(), ``channel originate`` and Dial's M()/U() results.

Real SIP legs for the same features are in tests/integration/test_origination_sip.py."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import pytest

from hookflash.apps.callfile import CallFileError, parse_call_file
from tests.helpers import call, run, running_pbx

# ---------------------------------------------------------------------- the call file format


def test_parse_full_call_file() -> None:
    cf = parse_call_file(b"""# a wake-up call
Channel: SIP/0000FFFF0001
CallerID: "Wakeup Service" <555 1212>
MaxRetries: 2
RetryTime: 60   # a minute
WaitTime: 30
Context: wakeup
Extension: s
Priority: 3
Account: hotel\\;room12 ; comment
Setvar: ROOM=12
Set: CDR(userfield)=wake;up
SetVar: EMPTY=
Archive: Yes
AlwaysDelete: no
Codecs: alaw, ulaw
""", "w.call")
    assert (cf.tech, cf.dest, cf.context, cf.exten, cf.priority) == ("SIP", "0000FFFF0001", "wakeup", "s", 3)
    assert cf.callerid == ("Wakeup Service", "5551212")
    assert (cf.maxretries, cf.retrytime, cf.waittime) == (2, 60, 30)
    assert cf.account == "hotel;room12"
    assert cf.variables == [("ROOM", "12"), ("CDR(userfield)", "wake"), ("EMPTY", "")]
    assert cf.archive is True and cf.always_delete is False
    assert cf.warnings == [] and any("codecs" in n for n in cf.notes)
    assert cf.target == "s@wakeup:3"


def test_parse_defaults_application_form_and_bookkeeping_lines() -> None:
    cf = parse_call_file(b"channel: Local/1@t\r\napplication: Playback\r\ndata: hello-world\r\n"
                         b"StartRetry: 99 1 (1700000000)\nEndRetry: 99 1 (1700000010)\n"
                         b"StartRetry: 99 2 (1700000020)\n", "x.call")
    assert (cf.maxretries, cf.retrytime, cf.waittime, cf.priority) == (0, 300, 45, 1)
    assert (cf.app, cf.data, cf.context) == ("Playback", "hello-world", "default")
    assert cf.archive is False and cf.always_delete is True
    assert cf.retries == 1 and cf.calling_pid == 99  # one finished attempt, one that never ended
    assert cf.target == "application Playback(hello-world)"


def test_parse_bad_values_warn_with_their_line_and_use_defaults() -> None:
    cf = parse_call_file(b"Channel: Local/1@t\nExtension: 1\nMaxRetries: many\nRetryTime: 0\n"
                         b"WaitTime: -3\nPriority: first\nSetvar: NOEQUALS\nBogus: 1\njust words\n", "b.call")
    assert (cf.maxretries, cf.retrytime, cf.waittime, cf.priority) == (0, 300, 45, 1)
    joined = "\n".join(cf.warnings)
    for expected in ("line 3: invalid max retries 'many'", "line 4: invalid retrytime", "line 5: invalid waittime",
                     "line 6: invalid priority", "line 7: malformed 'setvar'", "line 8: unknown keyword 'bogus'",
                     "line 9: syntax error"):
        assert expected in joined, joined


@pytest.mark.parametrize("text, line, message", [
    (b"Context: t\nChannel: nonsense\nExtension: 1\n", 2, "Channel should be in form Tech/Dest"),
    (b"Context: t\nExtension: 1\n", 0, "no 'Channel: Tech/Dest' line"),
    (b"Channel: Local/1@t\nContext: t\n", 0, "Application:' or 'Extension:'"),
    (b"Channel: Local/1@t\nExtension: 1\n\x00\x01", 3, "binary data"),
    (b"Channel: Local/1@t\n" + b"Set: A=" + b"x" * 70000 + b"\n", 0, "at most"),
])
def test_parse_unusable_files_name_file_and_line(text: bytes, line: int, message: str) -> None:
    with pytest.raises(CallFileError) as info:
        parse_call_file(text, "/spool/outgoing/bad.call")
    assert info.value.line == line and message in str(info.value)
    assert str(info.value).startswith("/spool/outgoing/bad.call" + (f":{line}" if line else ""))


# ---------------------------------------------------------------------- the spooler with Local channels

DIALPLAN = """
[t]
exten => answer,1,Answer()
 same => n,Wait(0.6)
exten => ring,1,Ringing()
 same => n,Wait(30)
exten => busy,1,Set(DB(t/tries)=$[0${DB(t/tries)} + 1])
 same => n,Set(DB(t/at${DB(t/tries)})=${EPOCH})
 same => n,Busy()
exten => later,1,Set(DB(t/later)=${EPOCH})
exten => target,1,Set(DB(t/ran)=${CHANNEL}|${FOO}|${CALLERID(all)}|${CHANNEL(accountcode)}|${CDR(userfield)})
 same => n,Wait(0.1)
 same => n,Set(DB(t/finished)=yes)
"""


def _drop(q: Path, name: str, text: str, mtime: float | None = None) -> Path:
    """Write elsewhere, then rename into the spool, as a user should."""
    tmp = q / f".{name}.tmp"
    tmp.write_text(text)
    if mtime is not None:
        os.utime(tmp, (mtime, mtime))
    os.replace(tmp, q / name)
    return q / name


async def _until(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return bool(predicate())


def test_call_file_runs_the_dialplan_and_is_deleted(tmp_path: Path) -> None:
    async def main():  # type: ignore[no-untyped-def]
        async with running_pbx(tmp_path, DIALPLAN) as (pbx, lines):
            spool = pbx.modules.loaded["pbx_spool"]
            path = _drop(spool.qdir, "a.call", "Channel: Local/answer@t\nContext: t\nExtension: target\n"
                         "Setvar: FOO=bar\nSet: CDR(userfield)=uf\nCallerID: \"Bob\" <123>\nAccount: acc1\n")
            assert await _until(lambda: pbx.astdb.get("t", "ran") is not None, 5)
            still_there = path.exists()  # Asterisk keeps the file until the call is over
            assert await _until(lambda: not path.exists(), 5)
            return pbx.astdb.get("t", "ran"), pbx.astdb.get("t", "finished"), still_there, lines, spool
    ran, finished, still_there, lines, spool = run(main())
    chan, foo, cid, account, userfield = ran.split("|")
    assert chan.startswith("Local/answer@t-") and chan.endswith(";1")
    assert (foo, cid, account, userfield) == ("bar", '"Bob" <123>', "acc1", "uf")
    assert finished == "yes" and still_there
    assert any("Attempting call on Local/answer@t for target@t:1 (Retry 1)" in line for line in lines)
    assert not spool.done_dir.exists()  # no Archive: deleted


def test_archive_completed_and_application_form(tmp_path: Path) -> None:
    async def main():  # type: ignore[no-untyped-def]
        async with running_pbx(tmp_path, DIALPLAN) as (pbx, _lines):
            spool = pbx.modules.loaded["pbx_spool"]
            _drop(spool.qdir, "app.call", "Channel: Local/answer@t\nApplication: Set\n"
                  "Data: DB(t/app)=${CHANNEL}\nArchive: yes\n")  # Data is not substituted, as in Asterisk
            done = spool.done_dir / "app.call"
            assert await _until(done.exists, 5)
            return done.read_text(), pbx.astdb.get("t", "app"), (spool.qdir / "app.call").exists()
    text, app, left = run(main())
    assert app == "${CHANNEL}"
    assert text.splitlines()[-1] == "Status: Completed"
    assert any(line.startswith("StartRetry: ") for line in text.splitlines())
    assert not left


def test_unreachable_channel_is_retried_then_expired(tmp_path: Path) -> None:
    async def main():  # type: ignore[no-untyped-def]
        async with running_pbx(tmp_path, DIALPLAN) as (pbx, _lines):
            spool = pbx.modules.loaded["pbx_spool"]
            started = time.time()
            _drop(spool.qdir, "r.call", "Channel: Local/busy@t\nContext: t\nExtension: target\n"
                  "MaxRetries: 2\nRetryTime: 1\nArchive: yes\n")
            done = spool.done_dir / "r.call"
            assert await _until(done.exists, 12)
            return (done.read_text(), pbx.astdb.get("t", "tries"), pbx.astdb.get("t", "ran"),
                    [int(pbx.astdb.get("t", f"at{i}") or 0) for i in (1, 2, 3)], started)
    text, tries, ran, times, _started = run(main())
    assert tries == "3" and ran is None  # MaxRetries 2 = three attempts, never answered
    assert times[1] - times[0] >= 1 and times[2] - times[1] >= 1  # RetryTime apart
    body = text.splitlines()
    assert [line.split(":")[0] for line in body if line.split(":")[0].endswith("Retry")] == [
        "StartRetry", "EndRetry", "StartRetry", "EndRetry", "StartRetry"]
    assert body[-1] == "Status: Expired"


def test_future_mtime_delays_the_call(tmp_path: Path) -> None:
    async def main():  # type: ignore[no-untyped-def]
        async with running_pbx(tmp_path, DIALPLAN) as (pbx, _lines):
            spool = pbx.modules.loaded["pbx_spool"]
            when = time.time() + 2
            _drop(spool.qdir, "later.call", "Channel: Local/answer@t\nContext: t\nExtension: later\n",
                  mtime=when)
            await asyncio.sleep(1.0)
            early = pbx.astdb.get("t", "later")
            assert await _until(lambda: pbx.astdb.get("t", "later") is not None, 5)
            return early, int(pbx.astdb.get("t", "later") or 0), when
    early, ran_at, when = run(main())
    assert early is None
    assert ran_at >= int(when)


def test_malformed_files_are_logged_and_removed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def main():  # type: ignore[no-untyped-def]
        async with running_pbx(tmp_path, DIALPLAN) as (pbx, _lines):
            spool = pbx.modules.loaded["pbx_spool"]
            q = spool.qdir
            _drop(q, "nochan.call", "Context: t\nExtension: target\n")
            _drop(q, "badchan.call", "Archive: yes\nChannel: nonsense\nExtension: 1\n")
            (q / ".bin.tmp").write_bytes(b"Channel: Local/a@t\n\x00\xff\xfe")
            os.replace(q / ".bin.tmp", q / "bin.call")
            outside = tmp_path / "outside.call"
            outside.write_text("Channel: Local/answer@t\nApplication: Set\nData: DB(t/link)=1\nArchive: yes\n")
            os.symlink(outside, q / "link.call")
            _drop(q, ".hidden.call", "Channel: Local/answer@t\nApplication: Set\nData: DB(t/hidden)=1\n")
            assert await _until(lambda: {p.name for p in q.iterdir()} == {".hidden.call"}, 5)
            await asyncio.sleep(0.2)
            return ({p.name: p.read_text() for p in spool.done_dir.iterdir()} if spool.done_dir.exists() else {},
                    pbx.astdb.get("t", "link"), pbx.astdb.get("t", "hidden"), outside.read_text(), spool)
    caplog.set_level(logging.WARNING, logger="hookflash")
    archived, link_ran, hidden_ran, outside_text, spool = run(main())
    text = caplog.text
    assert "nochan.call: no 'Channel: Tech/Dest' line" in text
    assert "badchan.call:2: Channel should be in form Tech/Dest" in text
    assert "bin.call:2: binary data" in text
    assert "link.call: is a symbolic link" in text
    assert list(archived) == ["badchan.call"] and archived["badchan.call"].endswith("Status: Failed\n")
    assert link_ran is None and hidden_ran is None
    assert "Status" not in outside_text  # the link's target was not touched
    assert spool.failed == 4


def test_polling_when_inotify_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hookflash.apps import spool as spool_mod

    def no_inotify(directory: Path) -> None:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(spool_mod, "Inotify", no_inotify)

    async def main():  # type: ignore[no-untyped-def]
        async with running_pbx(tmp_path, DIALPLAN) as (pbx, _lines):
            spool = pbx.modules.loaded["pbx_spool"]
            assert spool.inotify is None
            _drop(spool.qdir, "p.call", "Channel: Local/answer@t\nApplication: Set\nData: DB(t/polled)=1\n")
            return await _until(lambda: pbx.astdb.get("t", "polled") == "1", 5)
    assert run(main())


def test_always_delete_no_keeps_a_file_rescheduled_during_the_call(tmp_path: Path) -> None:
    async def main():  # type: ignore[no-untyped-def]
        async with running_pbx(tmp_path, DIALPLAN + """
exten => again,1,Set(DB(t/runs)=$[0${DB(t/runs)} + 1])
 same => n,System(touch -d @$[${EPOCH} + 1] ${SPOOLFILE})
""") as (pbx, _lines):
            spool = pbx.modules.loaded["pbx_spool"]
            path = spool.qdir / "keep.call"
            _drop(spool.qdir, "keep.call", f"Channel: Local/answer@t\nContext: t\nExtension: again\n"
                  f"AlwaysDelete: no\nSetvar: SPOOLFILE={path}\n")
            assert await _until(lambda: pbx.astdb.get("t", "runs") == "2", 8)
            path.unlink()
            return True
    assert run(main())


# ---------------------------------------------------------------------- Originate()

ORIGINATE_PLAN = DIALPLAN + """
exten => o1,1,Originate(Local/answer@t,exten,t,p2,2,5)
 same => n,Set(DB(o/s1)=${ORIGINATE_STATUS})
exten => o2,1,Originate(Local/ring@t,exten,t,target,1,1)
 same => n,Set(DB(o/s2)=${ORIGINATE_STATUS})
exten => o3,1,Originate(Local/answer@t,exten,t,cid,1,5,c(555)n(Alice)v(V1=x^V2=y))
 same => n,Originate(Local/answer@t,app,Set,DB(o/plainapp)=ran)
 same => n,Set(DB(o/s3)=${ORIGINATE_STATUS})
exten => o4,1,Originate(Local/answer@t,exten,t)
 same => n,Set(DB(o/s4)=${ORIGINATE_STATUS})
exten => o5,1,Originate(Local/answer@t,exten,t,target,1,abc)
 same => n,Set(DB(o/s5)=${ORIGINATE_STATUS})
exten => o6,1,Originate(Local/ring@t,exten,t,target,1,1,a)
 same => n,Set(DB(o/s6)=${ORIGINATE_STATUS})
exten => o7,1,Originate(Local/answer@t,exten,t,target,1,5,b(t^pre^1(hello))B(t^pre^1(me)))
 same => n,Set(DB(o/s7)=${ORIGINATE_STATUS})
exten => pre,1,Set(DB(o/pre-${ARG1})=${CHANNEL})
 same => n,Return()
exten => s,1,Set(DB(o/s-ran)=${CHANNEL})
exten => cid,1,Set(DB(o/app)=${CALLERID(name)}-${CALLERID(num)}-${V1}-${V2})
exten => 2,1,NoOp()
exten => p2,1,Set(DB(o/prio1)=${CHANNEL})
exten => p2,2,Set(DB(o/prio2)=${CHANNEL})
"""


def _originate(tmp_path: Path, exten: str, keys: list[str], wait: float = 0.0) -> dict[str, str | None]:
    async def main():  # type: ignore[no-untyped-def]
        async with running_pbx(tmp_path, ORIGINATE_PLAN) as (pbx, _lines):
            await call(pbx, f"{exten}@t")
            await asyncio.sleep(wait)
            return {k: pbx.astdb.get(*k.split("/")) for k in keys}  # type: ignore[union-attr]
    return run(main())  # type: ignore[no-any-return]


def test_originate_priority_given_with_a_timeout_is_honoured(tmp_path: Path) -> None:
    got = _originate(tmp_path, "o1", ["o/s1", "o/prio1", "o/prio2"], 0.3)
    assert got["o/s1"] == "SUCCESS" and (got["o/prio2"] or "").startswith("Local/answer@t-")
    assert got["o/prio1"] is None


def test_originate_ringing_at_timeout(tmp_path: Path) -> None:
    start = time.time()
    got = _originate(tmp_path, "o2", ["o/s2"])
    assert got["o/s2"] == "RINGING" and time.time() - start < 10


def test_originate_callerid_and_variables_options_and_app_form(tmp_path: Path) -> None:
    got = _originate(tmp_path, "o3", ["o/s3", "o/app", "o/plainapp"], 0.3)
    assert got == {"o/s3": "SUCCESS", "o/app": "Alice-555-x-y", "o/plainapp": "ran"}


def test_originate_exten_defaults_to_s(tmp_path: Path) -> None:
    got = _originate(tmp_path, "o4", ["o/s4", "o/s-ran"], 0.3)
    assert got["o/s4"] == "SUCCESS" and got["o/s-ran"] is not None


def test_originate_bad_timeout_uses_30s(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="hookflash")
    got = _originate(tmp_path, "o5", ["o/s5"], 0.3)
    assert got["o/s5"] == "SUCCESS" and "Invalid timeout: 'abc'. Setting timeout to 30 seconds" in caplog.text


def test_originate_async_option_returns_at_once(tmp_path: Path) -> None:
    start = time.time()
    got = _originate(tmp_path, "o6", ["o/s6"])
    assert got["o/s6"] == "SUCCESS" and time.time() - start < 5


def test_originate_predial_gosubs(tmp_path: Path) -> None:
    got = _originate(tmp_path, "o7", ["o/s7", "o/pre-hello", "o/pre-me"], 0.3)
    assert got["o/s7"] == "SUCCESS"
    assert (got["o/pre-hello"] or "").startswith("Local/answer@t-")  # b(): the new channel
    assert (got["o/pre-me"] or "").startswith("Local/o7@t-")  # B(): the calling channel


@pytest.mark.parametrize("args, message", [
    ("Local/answer@t,exten", "requires arguments"),
    ("nonsense,exten,t", "Channel Tech/Data invalid"),
    ("Local/answer@t,dial,t", "Incorrect type"),
    ("Local/answer@t,exten,t,target,first", "Invalid priority"),
    ("Local/answer@t,exten,t,target,1,5,z", "Invalid options"),
])
def test_originate_bad_arguments_fail_and_hang_up(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                  args: str, message: str) -> None:
    async def main():  # type: ignore[no-untyped-def]
        async with running_pbx(tmp_path, f"""
            [t]
            exten => s,1,Originate({args})
             same => n,Set(DB(o/after)=reached)
            exten => answer,1,Answer()
            exten => h,1,Set(DB(o/status)=${{ORIGINATE_STATUS}})
            """) as (pbx, _lines):
            await call(pbx, "s@t")
            return pbx.astdb.get("o", "after"), pbx.astdb.get("o", "status")  # type: ignore[union-attr]
    caplog.set_level(logging.WARNING, logger="hookflash")
    after, status = run(main())
    assert after is None and status == "FAILED"
    assert message in caplog.text


def test_channel_originate_console_command(tmp_path: Path) -> None:
    from hookflash.engine.cli_core import complete, run_command

    async def main():  # type: ignore[no-untyped-def]
        async with running_pbx(tmp_path, ORIGINATE_PLAN) as (pbx, _lines):
            usage = await run_command(pbx, "channel originate Local/answer@t")
            out1 = await run_command(pbx, "channel originate Local/answer@t extension target@t")
            out2 = await run_command(pbx, "channel originate Local/answer@t application Set DB(o/cli)=yes")
            await _until(lambda: pbx.astdb.get("o", "cli") is not None and pbx.astdb.get("t", "ran"), 5)
            return (usage, out1, out2, pbx.astdb.get("o", "cli"), pbx.astdb.get("t", "ran"),
                    complete(pbx, "channel originate Local/x@t app"),
                    complete(pbx, "channel originate Local/x@t application Orig"))
    usage, out1, out2, cli, ran, kinds, apps = run(main())
    assert usage.startswith("Usage: channel originate <tech/data> application <appname> [appdata]")
    assert out1 == "" and out2 == ""
    assert cli == "yes" and (ran or "").startswith("Local/answer@t-")
    assert kinds == ["application"] and apps == ["Originate"]


# ---------------------------------------------------------------------- Dial M() and U()

DIAL_PLAN = """
[t]
exten => s,1,Set(__TOKEN=abc)
 same => n,Set(ISCALLER=1)
 same => n,Dial(Local/callee@t,5,${OPTS})
 same => n,Set(DB(d/status)=${DIALSTATUS})
 same => n,Set(DB(d/after)=next)
exten => landing,1,Set(DB(d/landed)=${DIALSTATUS})
exten => callee,1,Answer()
 same => n,Wait(1)
 same => n,Set(DB(d/bridged)=yes)
exten => h,1,GotoIf($["${ISCALLER}" != "1"]?3)
 same => n,Set(DB(d/caller_h)=${DIALSTATUS})
 same => n,NoOp()

[macro-goto]
exten => s,1,Set(MACRO_RESULT=GOTO:t^landing^1)

[macro-result]
exten => s,1,Set(DB(d/macro)=${ARG1}-${TOKEN}-${CHANNEL})
 same => n,Set(MACRO_RESULT=${ARG1})

[macro-rejects]
exten => s,1,GotoIf($["${ARG1}" != "1"]?hangup,1)
exten => hangup,1,Verbose(2,Call was rejected by called party)
 same => n,Hangup()

[macro-slow]
exten => s,1,Set(DB(d/slow)=started)
 same => n,Wait(10)
 same => n,Set(DB(d/slow)=finished)

[sub-result]
exten => s,1,Set(DB(d/sub)=${ARG1}+${ARG2}-${CHANNEL})
 same => n,Set(GOSUB_RESULT=${ARG1})
 same => n,Return()
"""


def _dial(tmp_path: Path, opts: str, hangup_after: float | None = None) -> dict[str, str | None]:
    async def main():  # type: ignore[no-untyped-def]
        async with running_pbx(tmp_path, DIAL_PLAN) as (pbx, _lines):
            if hangup_after is None:
                await call(pbx, "s@t", {"OPTS": opts})
            else:
                task = asyncio.ensure_future(call(pbx, "s@t", {"OPTS": opts}))
                await asyncio.sleep(hangup_after)
                caller = next(c for c in pbx.channels if c.name.endswith(";2") and c.exten == "s")
                caller.request_hangup()
                await task
            await asyncio.sleep(0.2)
            return {k: pbx.astdb.get("d", k) for k in  # type: ignore[union-attr]
                    ("status", "after", "landed", "bridged", "caller_h", "macro", "sub", "slow")}
    return run(main())  # type: ignore[no-any-return]


def test_dial_macro_continue_busy_congestion_go_on(tmp_path: Path) -> None:
    for i, (result, status) in enumerate((("CONTINUE", "ANSWER"), ("BUSY", "BUSY"),
                                          ("CONGESTION", "CONGESTION"), ("CHANUNAVAIL", "CHANUNAVAIL"))):
        got = _dial(tmp_path / str(i), f"M(result^{result})")
        assert got["status"] == status and got["after"] == "next", (result, got)
        assert got["bridged"] is None  # the called party was hung up, not connected
        assert (got["macro"] or "").startswith(f"{result}-abc-Local/callee@t-")


def test_dial_macro_goto_moves_the_caller(tmp_path: Path) -> None:
    got = _dial(tmp_path, "M(goto)")
    assert got["landed"] == "ANSWER" and got["after"] is None and got["bridged"] is None


def test_dial_macro_abort_hangs_up_both_unless_g(tmp_path: Path) -> None:
    got = _dial(tmp_path / "a", "M(result^ABORT)")
    assert got["after"] is None and got["caller_h"] == "ANSWER" and got["bridged"] is None
    got = _dial(tmp_path / "b", "gM(result^ABORT)")
    assert got["after"] == "next"


def test_dial_macro_that_hangs_up_the_callee_leaves_the_caller_unconnected(tmp_path: Path) -> None:
    """The chapter's CheckConfirm reject path: the macro runs Hangup() on the called party."""
    got = _dial(tmp_path / "reject", "M(rejects^2)")
    assert got["bridged"] is None and got["after"] is None and got["caller_h"] == "ANSWER"
    got = _dial(tmp_path / "accept", "M(rejects^1)")
    assert got["bridged"] == "yes"  # accepted: bridged, the callee's dialplan goes on


def test_dial_gosub_result_and_arguments(tmp_path: Path) -> None:
    got = _dial(tmp_path / "a", "U(sub-result^BUSY^two)")
    assert got["status"] == "BUSY" and got["after"] == "next"
    assert (got["sub"] or "").startswith("BUSY+two-Local/callee@t-")
    got = _dial(tmp_path / "b", "gU(sub-result^^x)")
    assert got["bridged"] == "yes" and got["status"] == "ANSWER"


def test_dial_missing_macro_does_not_connect(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="hookflash")
    got = _dial(tmp_path, "M(nosuch)")
    assert got["bridged"] is None and got["after"] is None
    assert "No such context 'macro-nosuch'" in caplog.text


def test_dial_caller_hanging_up_during_the_macro_ends_it(tmp_path: Path) -> None:
    started = time.time()
    got = _dial(tmp_path, "M(slow)", hangup_after=0.5)
    assert got["slow"] == "started" and got["bridged"] is None
    assert time.time() - started < 8  # the 10 s macro did not run to its end
