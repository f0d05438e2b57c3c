"""Command line: the server, the remote console and ``dialplan try``.

    hookflash [--config DIR] [-f] [-v...] [--socket PATH]   run the server (console unless -f)
    hookflash -r [--config DIR | --socket PATH]              attach a console to a running server
    hookflash -rx "command" [...]                             run one console command and print
    hookflash dialplan try EXTEN@CONTEXT [--var N=V ...] [--config DIR] [--verbose N]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

SOCKET_NAME = "hookflash.ctl"


def _event_loop_policy() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _socket_path(config: str | None, socket: str | None) -> Path:
    if socket:
        return Path(socket)
    from hookflash.conf.asterisk_conf import load_asterisk_conf
    from hookflash.engine.pbx import _default_state_dir, embedded_config_dir
    config_dir = Path(config) if config else embedded_config_dir()
    conf = load_asterisk_conf(config_dir, default_root=_default_state_dir(Path(config) if config else None))
    return Path(conf.directories.astrundir) / SOCKET_NAME


async def serve(config: str | None, console: bool, socket: str | None, verbose: int | None) -> int:
    from hookflash.conf import ConfigError
    from hookflash.console.server import ConsoleServer
    from hookflash.engine.pbx import Pbx
    try:
        pbx = Pbx(Path(config) if config else None, verbose=verbose)
    except ConfigError as exc:
        print(f"hookflash: {exc}", file=sys.stderr)
        return 2
    printer = (lambda text: print(text, flush=True))
    if not console:
        pbx.verbosity.sinks.append(printer)
    pbx.manage_log_level = True  # type: ignore[attr-defined]
    pbx.apply_log_level()
    await pbx.start()
    _tune_gc()
    path = Path(socket) if socket else Path(pbx.dirs.astrundir) / SOCKET_NAME
    server = ConsoleServer(pbx, path)
    try:
        await server.start()
    except (RuntimeError, OSError) as exc:
        print(f"hookflash: cannot open the console socket: {exc}", file=sys.stderr)
        await pbx.stop()
        return 1
    where = "embedded default configuration" if config is None else f"configuration in {pbx.config_dir}"
    print(f"hookflash running on its {where}; console socket: {path} "
          f"(attach with: hookflash -r --socket {path})", flush=True)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, pbx.request_stop)
        except (NotImplementedError, RuntimeError):
            pass
    tasks = [asyncio.ensure_future(pbx.stop_requested.wait())]
    if console and sys.stdin.isatty():
        from hookflash.console.client import interactive
        from hookflash.engine.cli_core import complete, run_command

        async def run(line: str) -> str:
            return await run_command(pbx, line)

        async def completions(line: str) -> list[str]:
            return complete(pbx, line)

        tasks.append(asyncio.ensure_future(
            interactive(run, completions, pbx.verbosity.sinks.append, pbx.stop_requested)))
    elif console:
        pbx.verbosity.sinks.append(printer)
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()
    await server.stop()
    await pbx.stop()
    return 0


def _tune_gc() -> None:
    """A PBX keeps many small objects alive for seconds (SIP transactions wait 32 s by
    RFC 3261): park everything made at start-up outside the collector, collect the
    young generation every 10,000 net allocations (1.5 µs per young object here: a
    young collection holds the loop, media relay included, for about 15 ms; at 50,000
    it held it 50-100 ms at 560 calls/s with a 1 s hold, for 0.6x the collector's
    total time) and the middle one as rarely as before (every million)."""
    import gc
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 100, 10)


async def remote(config: str | None, socket: str | None, command: str | None) -> int:
    from hookflash.console.client import execute_remote, remote_console
    path = _socket_path(config, socket)
    try:
        if command is not None:
            out = await execute_remote(path, command)
            sys.stdout.write(out)
            return 0
        return await remote_console(path)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        print(f"Unable to connect to remote hookflash (does {path} exist?): {exc}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["dialplan", "try"]:
        from hookflash.dialplan.try_ import main as try_main
        return try_main(argv[2:])
    parser = argparse.ArgumentParser(prog="hookflash", description="hookflash PBX")
    parser.add_argument("--config", "-C", metavar="DIR", help="directory of .conf files (default: embedded demo)")
    parser.add_argument("-f", "--foreground", action="store_true", help="stay in the foreground, no console")
    parser.add_argument("-c", "--console", action="store_true", help="console (the default)")
    parser.add_argument("--socket", metavar="PATH", help="console socket path")
    parser.add_argument("-r", "--remote", action="store_true", help="attach to a running server")
    parser.add_argument("-x", "--execute", metavar="COMMAND", help="with -r: run one command")
    parser.add_argument("-v", "--verbose", action="count", default=None, help="more verbose output")
    parser.add_argument("-V", "--version", action="store_true", help="print the version")
    args = parser.parse_args(argv)
    if args.version:
        from hookflash import __version__
        print(f"hookflash {__version__}")
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr) if args.remote or args.execute else None
    _event_loop_policy()
    if args.remote or args.execute is not None:
        return asyncio.run(remote(args.config, args.socket, args.execute))
    logging.getLogger("hookflash").propagate = False
    return asyncio.run(serve(args.config, not args.foreground, args.socket, args.verbose))


if __name__ == "__main__":
    sys.exit(main())
