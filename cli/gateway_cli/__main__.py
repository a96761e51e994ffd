"""``gateway-cli``: the REPL, or print mode with ``-p``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Optional

from . import __version__
from .config import ConfigError, load

USAGE_EXIT = 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gateway-cli",
        description="Talk to an agent gateway from the terminal: a REPL, or print mode "
                    "with -p.",
        epilog="The URL and token come from --url/--token, else GATEWAY_URL/GATEWAY_TOKEN, "
               "else the config file (~/.config/gateway-cli/config.toml or "
               "$GATEWAY_CLI_CONFIG). Print mode exit codes: 0 ok, 1 the turn failed or "
               "was cancelled, 2 usage or config error, 3 timeout, 4 HTTP or auth failure.")
    p.add_argument("--url", help="gateway URL (default http://127.0.0.1:8000)")
    p.add_argument("--token", help="API token (gw_...)")
    p.add_argument("--chat", metavar="ID", help="use this chat (default: REPL resumes the "
                   "last chat; print mode starts a new one)")
    p.add_argument("-c", "--continue", dest="continue_last", action="store_true",
                   help="print mode: go on in the most recently active chat")
    p.add_argument("--new", action="store_true", help="REPL: start a new chat")
    p.add_argument("-p", "--print", dest="prompt", nargs="?", const="", default=None,
                   metavar="PROMPT", help="print mode: send PROMPT (or piped stdin), print "
                   "the answer, exit")
    p.add_argument("--file", action="append", default=[], metavar="PATH",
                   help="-p: upload this file to the workspace (uploads/<chat>/) and attach "
                        "it to the message; repeat for several")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="print mode: give up (and cancel the turn) after S seconds")
    p.add_argument("--json", action="store_true",
                   help="print mode: every event as one JSON line on stdout")
    p.add_argument("--allow-tools", action="store_true",
                   help="print mode: allow tool calls that need approval (default: deny)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print mode: print the chat id on stderr")
    p.add_argument("--version", action="version", version=f"gateway-cli {__version__}")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["jobs"]:  # ``gateway-cli jobs ...``: the jobs subcommand
        from .jobs import main as jobs_main

        sys.exit(jobs_main(argv[1:]))
    args = parser().parse_args(argv)
    code = run(args)
    sys.exit(code)


def run(args: argparse.Namespace) -> int:
    print_mode = args.prompt is not None or not sys.stdin.isatty()
    if not print_mode and (args.json or args.timeout is not None or args.allow_tools
                           or args.file):
        print("gateway-cli: --json, --timeout, --allow-tools and --file go with -p "
              "(in the REPL: /attach)", file=sys.stderr)
        return USAGE_EXIT
    if args.timeout is not None and args.timeout <= 0:
        print("gateway-cli: --timeout must be a positive number of seconds", file=sys.stderr)
        return USAGE_EXIT
    try:
        config = load(args.url, args.token)
    except ConfigError as exc:
        print(f"gateway-cli: {exc}", file=sys.stderr)
        return USAGE_EXIT
    if print_mode:
        from .printmode import PrintMode, read_prompt

        prompt = read_prompt(args.prompt)
        if not prompt.strip():
            print("gateway-cli: no prompt: pass -p \"...\" or pipe it on stdin",
                  file=sys.stderr)
            return USAGE_EXIT
        if args.chat and args.continue_last:
            print("gateway-cli: --chat and --continue exclude each other", file=sys.stderr)
            return USAGE_EXIT
        mode = PrintMode(config, prompt, chat_id=args.chat, timeout=args.timeout,
                         as_json=args.json, allow_tools=args.allow_tools,
                         verbose=args.verbose, continue_last=args.continue_last,
                         files=args.file)
        try:
            return asyncio.run(mode.run())
        except KeyboardInterrupt:
            return 130
        except BrokenPipeError:  # the reader left (``| head``): not an error of ours
            _quiet_stdout()
            return 0
    from .repl import Repl

    try:
        return asyncio.run(Repl(config, chat_id=args.chat, new_chat=args.new).run())
    except KeyboardInterrupt:
        return 130


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the flush at exit does not fail on the closed pipe
    again (and print a traceback)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    main()
