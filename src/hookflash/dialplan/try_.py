"""``hookflash dialplan try EXTEN@CONTEXT``: run an extension offline and show what it did.

The extension runs on the ``;2`` half of a ``Local/EXTEN@CONTEXT`` channel, exactly as a
call would, with no media. The verbose trace is printed at the chosen level (default 3,
as ``core set verbose 3``; ``Verbose(0,...)`` always prints), then the channel's final
variables. The exit status is 0 when the run logged no warning or error, 1 when it did
(unknown application, invalid extension, bad expression...), 2 when the configuration
could not be read.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
from pathlib import Path


class _Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


async def run_try(target: str, variables: list[str], config: str | None, verbose: int,
                  timeout: float, out=sys.stdout, state_dir: str | None = None) -> int:  # type: ignore[no-untyped-def]
    from hookflash.channels.local import LocalTech
    from hookflash.conf import ConfigError
    from hookflash.engine.pbx import Pbx

    exten, at, context = target.partition("@")
    if not at or not exten or not context:
        print(f"dialplan try: expected EXTEN@CONTEXT, got '{target}'", file=sys.stderr)
        return 2
    counter = _Counter()
    root = logging.getLogger("hookflash")
    root.addHandler(counter)
    root.setLevel(logging.DEBUG)
    root.propagate = False
    try:
        pbx = Pbx(Path(config) if config else None, verbose=verbose,
                  state_dir=Path(state_dir) if state_dir else None)
        pbx.verbosity.sinks.append(lambda line: print(line, file=out, flush=True))
        try:
            await pbx.start()
        except ConfigError as exc:
            print(f"dialplan try: {exc}", file=sys.stderr)
            return 2
        if counter.count and pbx.dialplan.contexts == {}:
            return 2
        if context not in pbx.dialplan.contexts:
            print(f"dialplan try: there is no context '{context}'", file=sys.stderr)
            await pbx.stop()
            return 1
        before = counter.count
        one = await pbx.request(f"Local/{exten}@{context}/n")
        for item in variables:
            name, eq, value = item.partition("=")
            if not eq:
                print(f"dialplan try: --var expects NAME=VALUE, got '{item}'", file=sys.stderr)
                await pbx.stop()
                return 2
            one.set_var(name, value)
        tech = one.tech
        assert isinstance(tech, LocalTech)
        two = tech.pair.chan
        assert two is not None
        await tech.call(one, f"{exten}@{context}", timeout)
        try:
            await asyncio.wait_for(_settle(pbx, two), timeout)
        except TimeoutError:
            print(f"dialplan try: still running after {timeout:g} s; hanging up", file=out)
            two.request_hangup()
            await asyncio.sleep(0.1)
        print(f"-- Final variables of {two.name} --", file=out)
        for name, value in sorted(two.vars.items()):
            shown = value if len(value) <= 1000 else value[:1000] + f"... ({len(value)} characters)"
            print(f"{name}={shown}", file=out)
        await one.hangup()
        await pbx.stop()
        return 1 if counter.count > before else 0
    finally:
        root.removeHandler(counter)


async def _settle(pbx, two) -> None:  # type: ignore[no-untyped-def]
    """Until the call and everything it started (Originate, Local legs) is over."""
    while not two.hung_up or [t for t in pbx.tasks if not t.done()]:
        await asyncio.sleep(0.01)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hookflash dialplan try",
                                     description="Run an extension offline and print its trace.")
    parser.add_argument("target", metavar="EXTEN@CONTEXT")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                        help="set a channel variable first (repeatable; _NAME/__NAME inherit)")
    parser.add_argument("--config", metavar="DIR", help="configuration directory (default: embedded)")
    parser.add_argument("--verbose", type=int, default=3, metavar="N", help="verbose level (default 3)")
    parser.add_argument("--timeout", type=float, default=60.0, help="give up after this many seconds")
    parser.add_argument("--state-dir", metavar="DIR",
                        help="where AstDB/spool/logs go when asterisk.conf does not say "
                             "(default: a temporary directory for the embedded config)")
    args = parser.parse_args(argv)
    state_dir = args.state_dir
    if state_dir is None and args.config is None:
        state_dir = tempfile.mkdtemp(prefix="hookflash-try-")
    from hookflash.__main__ import _event_loop_policy
    _event_loop_policy()
    return asyncio.run(run_try(args.target, args.var, args.config, args.verbose, args.timeout,
                               state_dir=state_dir))
