"""Print mode: send one prompt, print the answer (or every event as JSON lines), exit.

Exit codes: 0 ok; 1 the turn ended with an error or was cancelled; 2 usage or config
error; 3 timeout; 4 HTTP or authentication failure (also: gateway unreachable).
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
import time
from pathlib import Path
from typing import Any, Optional, TextIO

from .api import ApiError, GatewayAPI
from .config import Config
from .session import ChatSocket, SessionError
from .turns import TurnWatch

EXIT_OK, EXIT_TURN_FAILED, EXIT_USAGE, EXIT_TIMEOUT, EXIT_HTTP = 0, 1, 2, 3, 4


class _Timeout(Exception):
    pass


class PrintMode:
    def __init__(self, config: Config, prompt: str, chat_id: Optional[str] = None,
                 timeout: Optional[float] = None, as_json: bool = False,
                 allow_tools: bool = False, verbose: bool = False,
                 continue_last: bool = False,
                 out: TextIO = sys.stdout, err: TextIO = sys.stderr,
                 files: Optional[list[str]] = None) -> None:
        self.files = [Path(f) for f in files or []]
        self.attachments: list[str] = []  # workspace paths of the uploaded files
        self.config = config
        self.prompt = prompt
        self.chat_id = chat_id
        self.timeout = timeout
        self.as_json = as_json
        self.allow_tools = allow_tools
        self.verbose = verbose
        self.continue_last = continue_last
        self.out = out
        self.err = err
        self.deadline = time.monotonic() + timeout if timeout else None
        self._text_open = False  # text printed without a final newline yet

    def _left(self) -> Optional[float]:
        if self.deadline is None:
            return None
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _Timeout()
        return left

    def _note(self, message: str) -> None:
        if self._text_open and not self.as_json:
            self.out.write("\n")
            self.out.flush()
            self._text_open = False
        print(f"gateway-cli: {message}", file=self.err, flush=True)

    def _emit(self, ev: dict[str, Any]) -> None:
        if self.as_json:
            if not str(ev.get("type", "")).startswith("client."):
                self.out.write(json.dumps(ev, ensure_ascii=False) + "\n")
                self.out.flush()
            return
        typ, data = ev.get("type"), ev.get("data") or {}
        if typ in ("agent.text_delta", "agent.text"):
            text = str(data.get("text", ""))
            if text:
                self.out.write(text)
                self.out.flush()
                self._text_open = not text.endswith("\n")

    async def run(self) -> int:
        try:
            return await self._run()
        except _Timeout:
            self._note(f"timed out after {self.timeout:g} s")
            return EXIT_TIMEOUT

    async def _run(self) -> int:
        api = GatewayAPI(self.config.url, self.config.token)
        try:
            try:
                if self.continue_last:  # the gateway lists chats by last activity
                    recent = await asyncio.wait_for(api.list_chats(limit=1), self._left())
                    self.chat_id = recent[0]["chat_id"] if recent else None
                if self.chat_id:
                    await asyncio.wait_for(api.get_chat(self.chat_id), self._left())
                else:
                    # Untitled: the gateway titles it from the prompt (and, when the
                    # profile allows, the model writes a short title after the reply).
                    chat = await asyncio.wait_for(api.create_chat(), self._left())
                    self.chat_id = chat["chat_id"]
            except ApiError as exc:
                self._note(str(exc))
                return EXIT_HTTP
            except asyncio.TimeoutError:
                raise _Timeout() from None
            if self.verbose:
                self._note(f"chat {self.chat_id}")
            try:
                self.attachments = [await api.attach(self.chat_id, f)
                                    for f in self.files]
            except (ApiError, OSError) as exc:
                self._note(f"--file: {exc}")
                return EXIT_HTTP
            return await self._turn()
        finally:
            await api.close()

    async def _turn(self) -> int:
        assert self.chat_id
        sock = ChatSocket(self.config.ws_base, self.config.token, self.chat_id)
        try:
            try:
                state = await asyncio.wait_for(sock.connect(), self._left())
            except SessionError as exc:
                self._note(exc.message)
                return EXIT_HTTP
            except asyncio.TimeoutError:
                raise _Timeout() from None
            self._emit(state)
            if not await sock.send_message(self.prompt, attachments=self.attachments):
                self._note("the connection closed before the message was sent")
                return EXIT_HTTP
            watch = TurnWatch()
            try:
                while True:
                    try:
                        ev = await sock.next_event(self._left())
                    except asyncio.TimeoutError:
                        raise _Timeout() from None
                    self._emit(ev)
                    await self._react(sock, ev)
                    if watch.feed(ev):
                        break
            except (_Timeout, asyncio.CancelledError):  # timeout, or Ctrl-C
                if watch.started or not watch.ended:
                    await sock.cancel()  # do not leave the turn running unattended
                raise
            if self._text_open and not self.as_json:
                self.out.write("\n")
                self.out.flush()
                self._text_open = False
            if sock.closed_code in (4001, 4004):
                return EXIT_HTTP
            if watch.cancelled:
                self._note("the turn was cancelled")
            elif watch.stop_reason == "error" and not watch.errors:
                self._note("the turn ended with an error")
            return EXIT_TURN_FAILED if watch.failed else EXIT_OK
        finally:
            await sock.close()

    async def _react(self, sock: ChatSocket, ev: dict[str, Any]) -> None:
        typ, data = ev.get("type"), ev.get("data") or {}
        if typ == "agent.tool_request":
            calls = data.get("tool_calls") or []
            verdict = "allow" if self.allow_tools else "deny"
            for call in calls:
                args = json.dumps(call.get("arguments"), ensure_ascii=False)
                if len(args) > 200:
                    args = args[:200] + "…"
                if self.allow_tools:
                    self._note(f"allowed tool call {call.get('name')} {args}")
                else:
                    self._note(f"denied tool call {call.get('name')} {args} "
                               "(pass --allow-tools to allow tool calls in print mode)")
            await sock.approve({str(c.get("id")): verdict for c in calls})
        elif typ == "agent.tool_denied":
            names = ", ".join(str(c.get("name")) for c in data.get("tool_calls") or [])
            self._note(f"the policy denied {names}: {data.get('reason', '')}")
        elif typ == "agent.error":
            self._note(f"error {data.get('code', '')}: {data.get('message', '')}")
        elif typ == "client.reconnecting" and data.get("attempt") == 1:
            self._note("connection lost; reconnecting")
        elif typ == "client.reconnected" and not data.get("replay_complete", True):
            self._note("reconnected, but some events were lost")
        elif typ == "client.closed":
            self._note(str(data.get("reason")))


def _stdin_is_piped(stdin: TextIO) -> bool:
    try:
        mode = os.fstat(stdin.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISREG(mode)


def read_prompt(arg: Optional[str], stdin: Optional[TextIO] = None) -> str:
    """The prompt from ``-p`` and/or stdin when it is a pipe or a file (stdin's text comes
    after the argument's, so ``git diff | gateway-cli -p "review this"`` works)."""
    stdin = sys.stdin if stdin is None else stdin
    parts = []
    if arg:
        parts.append(arg)
    if stdin is not None and _stdin_is_piped(stdin):
        piped = stdin.read()
        if piped.strip():
            parts.append(piped.rstrip("\n"))
    return "\n\n".join(parts)
