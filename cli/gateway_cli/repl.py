"""The interactive REPL: a prompt, streamed Markdown answers, inline tool approvals.

While a turn runs the prompt is replaced by the streamed answer; Ctrl-C sends
``{"type": "cancel"}`` (a second Ctrl-C stops waiting). At the prompt, a turn started by
another client of the same chat takes over the screen the same way, and the text typed
so far is kept. Ctrl-C on an empty prompt twice, or Ctrl-D, exits.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

from prompt_toolkit import PromptSession
from prompt_toolkit.application import run_in_terminal
from prompt_toolkit.history import FileHistory, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from . import __version__, keys, render
from .api import ApiError, GatewayAPI
from .config import Config, State, data_dir
from .session import ChatSocket, SessionError, event
from .turns import TurnWatch

HELP = """\
Commands:
  /chats                 list your chats (newest first)
  /chat new [title]      start a new chat
  /chat <id>             switch to a chat (a unique prefix of its id is enough)
  /profiles              list model profiles
  /profile use <name>    use a profile for this chat
  /permissions           show the tool permission policy
  /context               how full the context window is (compaction at the │ mark)
  /compact               compact the context now
  /cancel                stop the running turn
  /attach <file>         upload a local file and attach it to your next message
  /get <path> [to]       download a workspace file (to the current folder by default)
  /help                  this list
  /quit                  leave (or Ctrl-D)
Tool requests (one key, no Enter): y = allow, n = deny, a = always allow this tool
in this chat, c or Ctrl-C = cancel the turn.
Ctrl-C cancels a running turn; at an empty prompt press it twice to leave."""

_FOLLOW = object()  # prompt result: a turn started elsewhere, follow it
_CTRL_C = object()  # prompt result: Ctrl-C on an empty line
_STARTS_TURN = ("agent.turn_started", "agent.tool_request", "agent.text_delta", "agent.text")
QUESTION = "Allow? [y]es / [n]o / [a]lways for this chat / [c]ancel the turn: "
VERDICTS = {"y": "allow", "yes": "allow", "n": "deny", "no": "deny",
            "a": "allow_chat", "always": "allow_chat",
            "c": "cancel", "cancel": "cancel", "/cancel": "cancel"}
SAID = {"allow": "yes", "deny": "no", "allow_chat": "always", "cancel": "cancel"}


def esc(value: Any) -> str:
    """A value put into console markup, with its own ``[`` escaped."""
    return escape(str(value))


class _EchoOff:
    """Turn the terminal's echo off while a turn streams, so typing ahead (or the ``^C``
    of Ctrl-C) does not garble the output; what is typed waits for the next prompt."""

    def __init__(self) -> None:
        self.saved: Any = None
        try:
            import termios

            fd = sys.stdin.fileno()
            if os.isatty(fd):
                self.saved = termios.tcgetattr(fd)
                quiet = termios.tcgetattr(fd)
                quiet[3] &= ~(termios.ECHO | getattr(termios, "ECHOCTL", 0))
                termios.tcsetattr(fd, termios.TCSANOW, quiet)
        except (ImportError, OSError, ValueError, AttributeError):
            self.saved = None

    def restore(self) -> None:
        if self.saved is None:
            return
        try:
            import termios

            termios.tcsetattr(sys.stdin.fileno(), termios.TCSANOW, self.saved)
        except (ImportError, OSError, ValueError):
            pass
        self.saved = None


def _stdin_fd() -> Optional[int]:
    try:
        return sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return None


class Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class Repl:
    def __init__(self, config: Config, chat_id: Optional[str] = None, new_chat: bool = False,
                 console: Optional[Console] = None) -> None:
        self.config = config
        self.requested_chat = chat_id
        self.new_chat = new_chat
        self.console = console or Console(highlight=False)
        self.api = GatewayAPI(config.url, config.token)
        self.data = data_dir()
        self.state = State(self.data)
        self.sock: Optional[ChatSocket] = None
        self.chat: dict[str, Any] = {}
        self.following = False
        self.busy: Optional[asyncio.Task[Any]] = None
        self.pending_input = ""
        self.attachments: list[str] = []  # workspace paths for the next message
        self.last_ctrl_c = False
        self.detached = False  # stopped waiting for a turn: ignore its remaining events
        self.fatal: Optional[int] = None  # exit code once the session cannot go on

    # ------------------------------------------------------------------ setup
    def _history(self) -> Any:
        try:
            self.data.mkdir(parents=True, exist_ok=True)
            return FileHistory(str(self.data / "history"))
        except OSError:
            return InMemoryHistory()

    def _bindings(self) -> KeyBindings:
        kb = KeyBindings()

        @kb.add("c-c")
        def _(event: Any) -> None:
            buf = event.app.current_buffer
            if buf.text:
                buf.reset()
                self.last_ctrl_c = False
            else:
                # A result, not KeyboardInterrupt: raised in a task, that would escape
                # the event loop.
                event.app.exit(result=_CTRL_C)

        return kb

    @staticmethod
    def _ask_bindings() -> KeyBindings:
        kb = KeyBindings()

        @kb.add("c-c")
        def _(event: Any) -> None:
            event.app.exit(result="/cancel")

        return kb

    @property
    def chat_id(self) -> Optional[str]:
        return self.chat.get("chat_id")

    async def run(self) -> int:
        try:
            return await self._run()
        except Exit as exc:
            return exc.code
        finally:
            if self.sock:
                await self.sock.close()
            await self.api.close()
            try:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)
            except (NotImplementedError, RuntimeError):
                pass

    async def _run(self) -> int:
        self.prompt = PromptSession(history=self._history(), key_bindings=self._bindings(),
                                    enable_history_search=False)
        self.asker = PromptSession(key_bindings=self._ask_bindings())
        try:
            await self.api.list_chats(limit=1)  # checks the URL and the token
        except ApiError as exc:
            self.console.print(f"[red]{esc(exc)}[/]")
            return 4
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGINT, self._on_sigint)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows
            pass
        self.console.print(Text.assemble(("gateway-cli ", "bold"), (__version__, "dim"),
                                         ("  " + self.config.url, "dim"),
                                         ("  · /help for commands", "dim")))
        try:
            await self.first_chat()
        except ApiError as exc:
            self.console.print(f"[red]{esc(exc)}[/]")
            return 4
        except SessionError as exc:
            self.console.print(f"[red]{esc(exc.message)}[/]")
            return 4
        while self.fatal is None:
            line = await self.read_line()
            if line is None:
                break
            line = line.strip()
            if not line:
                continue
            await self.guarded(self.handle(line))
        return self.fatal or 0

    async def first_chat(self) -> None:
        """--chat, else the last chat used with this URL (unless --new), else a new one."""
        chat_id = self.requested_chat
        if not chat_id and not self.new_chat:
            chat_id = self.state.last_chat(self.config.url)
        if chat_id:
            try:
                await self.open_chat(chat_id, resumed=not self.requested_chat)
                return
            except ApiError as exc:
                if exc.status != 404 or self.requested_chat:
                    raise
        await self.open_chat((await self.api.create_chat())["chat_id"], fresh=True)

    # ------------------------------------------------------------------ signals
    def _on_sigint(self) -> None:
        if self.following and self.sock:
            self.sock.unget(event("client.interrupt"))
        elif self.busy and not self.busy.done():
            self.busy.cancel()

    async def guarded(self, work: Awaitable[Any]) -> None:
        """Run a command so that Ctrl-C cancels it and errors are printed, not raised."""
        self.busy = asyncio.ensure_future(work)
        try:
            await asyncio.shield(self.busy)
        except asyncio.CancelledError:
            if not self.busy.cancelled():
                raise
            self.console.print("[yellow]interrupted[/]")
        except ApiError as exc:
            self.console.print(f"[red]{esc(exc)}[/]")
            if exc.status == 401:
                raise Exit(4)
        except SessionError as exc:
            self.console.print(f"[red]{esc(exc.message)}[/]")
        finally:
            self.busy = None

    # ------------------------------------------------------------------ the prompt
    async def read_line(self) -> Optional[str]:
        """The next line typed at the prompt, None to leave. Turns started elsewhere
        while the prompt waits are followed, then the prompt comes back as it was."""
        while self.fatal is None:
            default, self.pending_input = self.pending_input, ""
            task = asyncio.ensure_future(
                self.prompt.prompt_async("› ", default=default, handle_sigint=False))
            while not task.done():
                if self.sock is None:
                    await asyncio.wait({task})
                    break
                sock = self.sock
                ev_task = asyncio.ensure_future(sock.next_event())
                await asyncio.wait({task, ev_task}, return_when=asyncio.FIRST_COMPLETED)
                if not ev_task.done():
                    ev_task.cancel()
                    try:
                        await ev_task
                    except asyncio.CancelledError:
                        pass
                if not ev_task.done() or ev_task.cancelled():
                    continue
                ev = ev_task.result()
                if task.done():
                    sock.unget(ev)
                elif self._starts_turn(ev):
                    sock.unget(ev)
                    await self._exit_prompt(task, result=_FOLLOW)
                else:
                    show = self.idle_event(ev)
                    if show is not None:
                        await run_in_terminal(show)
                    if self.fatal is not None:
                        await self._exit_prompt(task, exception=EOFError())
            try:
                result = task.result()
            except EOFError:
                return None
            if result is _CTRL_C:
                if self.last_ctrl_c:
                    return None
                self.last_ctrl_c = True
                self.console.print("[dim](press Ctrl-C again or Ctrl-D to leave)[/]")
                continue
            self.last_ctrl_c = False
            if result is _FOLLOW:
                if self.sock is not None:
                    first = await self.sock.next_event()
                    self.sock.unget(first)
                    self.console.print("[dim]↳ a turn started from another client[/]")
                    await self.follow(TurnWatch(
                        started=first.get("type") != "agent.turn_started"))
                continue
            return str(result)
        return None

    def _starts_turn(self, ev: dict[str, Any]) -> bool:
        typ = ev.get("type")
        if typ == "agent.turn_started":
            self.detached = False
            return True
        if typ in ("agent.turn_complete", "agent.cancelled") and self.detached:
            self.detached = False
            return False
        return typ in _STARTS_TURN and not self.detached

    async def _exit_prompt(self, task: "asyncio.Future[Any]", **how: Any) -> None:
        """End the running prompt (keeping what was typed) and wait until it is gone."""
        for _ in range(200):
            if task.done() or self.prompt.app.is_running:
                break
            await asyncio.sleep(0.01)
        if not task.done():
            self.pending_input = self.prompt.default_buffer.text
            self.prompt.app.erase_when_done = True  # it comes back once the turn is shown
            self.prompt.app.exit(**how)
        await asyncio.wait({task})
        self.prompt.app.erase_when_done = False

    def idle_event(self, ev: dict[str, Any]) -> Optional[Callable[[], None]]:
        """What to print for an event that arrived while the prompt waited and starts no
        turn (None: nothing)."""
        typ, data = ev.get("type"), ev.get("data") or {}
        line: Optional[str] = None
        if typ == "agent.error":
            line = f"[red]error {esc(data.get('code', ''))}: {esc(data.get('message', ''))}[/]"
        elif typ == "agent.cancelled":
            line = "[yellow]⨯ the running turn was cancelled[/]"
        elif typ == "client.closed":
            return lambda: self._closed(data)
        elif typ == "client.reconnecting" and data.get("attempt") == 1:
            line = "[dim]connection lost; reconnecting…[/]"
        elif typ == "client.reconnected":
            line = "[dim]reconnected[/]"
        if line is None:
            return None
        return lambda: self.console.print(line)

    def _closed(self, data: dict[str, Any]) -> None:
        self.console.print(f"[red]{esc(data.get('reason'))}[/]")
        self.sock = None
        if data.get("code") == 4001:
            self.fatal = 4
            return
        self.console.print("[dim]use /chat new or /chat <id> to go on[/]")

    async def ask(self, message: str) -> str:
        return await self.asker.prompt_async(message, handle_sigint=False)

    # ------------------------------------------------------------------ chats
    async def open_chat(self, chat_id: str, resumed: bool = False, fresh: bool = False) -> None:
        detail = await self.api.get_chat(chat_id)
        sock = ChatSocket(self.config.ws_base, self.config.token, detail["chat_id"])
        try:
            state = await sock.connect()
        except SessionError as exc:
            if exc.is_auth:
                self.console.print(f"[red]{esc(exc.message)}[/]")
                raise Exit(4) from None
            raise
        if self.sock:
            await self.sock.close()
        self.sock = sock
        self.chat = detail
        self.state.set_last_chat(self.config.url, detail["chat_id"])
        self.show_chat(detail, resumed=resumed, fresh=fresh)
        data = state.get("data") or {}
        if data.get("running") or data.get("pending_tool_calls"):
            self.console.print("[dim]a turn is running in this chat; following it "
                               "(Ctrl-C cancels it)[/]")
            if data.get("pending_tool_calls"):
                sock.unget(event("agent.tool_request", tool_calls=data["pending_tool_calls"]))
            partial = data.get("partial_text") or ""
            await self.follow(TurnWatch(started=True), partial_text=partial)

    def show_chat(self, detail: dict[str, Any], resumed: bool = False,
                  fresh: bool = False, keep: int = 6) -> None:
        title = detail.get("title") or "untitled"
        head = Text()
        head.append("new chat " if fresh else ("resumed chat " if resumed else "chat "),
                    style="dim")
        head.append(detail["chat_id"], style="bold")
        if not fresh:
            head.append(f"  {title}", style="italic")
        if detail.get("profile"):
            head.append(f"  profile {detail['profile']}", style="dim")
        self.console.print(head)
        messages = detail.get("messages") or []
        if len(messages) > keep:
            self.console.print(f"[dim]… {esc(len(messages) - keep)} earlier messages[/]")
        for msg in messages[-keep:]:
            for piece in render.message(msg):
                self.console.print(piece)

    # ------------------------------------------------------------------ a turn
    async def send(self, text: str) -> None:
        if self.sock is None:
            self.console.print("[red]not connected to a chat: /chat new or /chat <id>[/]")
            return
        if not self.chat.get("title"):
            title = " ".join(text.split())[:60]
            try:
                self.chat = {**self.chat, **(await self.api.rename_chat(self.chat_id, title))}
            except ApiError:
                pass
        if not await self.sock.send_message(text, attachments=self.attachments):
            self.console.print("[red]the connection is down; try again in a moment[/]")
            return
        self.attachments = []
        await self.follow(TurnWatch())

    async def follow(self, watch: TurnWatch, partial_text: str = "") -> None:
        """Render the chat's events until the watched turn ends."""
        assert self.sock is not None
        sock = self.sock
        stream = render.MarkdownStream(self.console)
        interrupts = 0
        self.following = True
        echo = _EchoOff()
        try:
            if partial_text:
                stream.feed(partial_text)
            else:
                stream.set_status("thinking…" if watch.started else "waiting…")
            while True:
                ev = await sock.next_event()
                if ev.get("type") == "client.interrupt":
                    interrupts += 1
                    if interrupts == 1:
                        if not await sock.cancel() and self.chat_id:
                            await self.api.cancel(self.chat_id)
                        stream.note(Text("cancelling… (Ctrl-C again to stop waiting)",
                                         style="yellow"))
                        continue
                    stream.finish()
                    self.detached = True
                    self.console.print("[yellow]stopped waiting; the turn may still be "
                                       "running (/cancel stops it)[/]")
                    return
                done = watch.feed(ev)
                await self.show_event(ev, stream, sock)
                if done:
                    return
        finally:
            stream.finish()
            echo.restore()
            self.following = False

    async def show_event(self, ev: dict[str, Any], stream: render.MarkdownStream,
                         sock: ChatSocket) -> None:
        typ, data = ev.get("type"), ev.get("data") or {}
        con = self.console
        if typ in ("agent.text_delta", "agent.text"):
            stream.feed(str(data.get("text", "")))
        elif typ == "agent.turn_started":
            stream.set_status("thinking…")
        elif typ == "agent.queued":
            position = int(data.get("position") or 1)
            if position > 1:
                stream.set_status(f"queued behind {position - 1} message(s)…")
        elif typ == "agent.tool_request":
            stream.finish()
            verdicts = await self.ask_tools(list(data.get("tool_calls") or []))
            if verdicts:
                await sock.approve(verdicts)
            stream.set_status("running tools…")
        elif typ == "agent.tool_denied":
            stream.finish()
            for call in data.get("tool_calls") or []:
                con.print(render.tool_call(call))
            con.print(f"  [red]⎿ denied by the policy[/] [dim]{esc(data.get('reason', ''))}[/]")
        elif typ == "agent.tool_result":
            stream.finish()
            con.print(render.tool_result(data))
            stream.set_status("thinking…")
        elif typ == "agent.turn_complete":
            stream.finish()
            usage = data.get("usage") or {}
            foot = Text(f"{data.get('model') or ''} · {usage.get('input_tokens', 0)} in, "
                        f"{usage.get('output_tokens', 0)} out", style="dim")
            reason = data.get("stop_reason")
            if reason and reason != "end_turn":
                foot.append(f" · stopped: {reason}", style="yellow")
            con.print(foot)
        elif typ == "agent.cancelled":
            stream.finish()
            con.print(f"[yellow]⨯ cancelled[/] [dim]{esc(data.get('message', ''))}[/]")
        elif typ == "agent.error":
            if data.get("code") == "invalid_event" and "approval" in str(data.get("message")):
                stream.note(Text(f"{data.get('message')}", style="dim"))
                return
            stream.finish()
            con.print(f"[red]error {esc(data.get('code', ''))}: {esc(data.get('message', ''))}[/]")
        elif typ == "agent.compaction_started":
            stream.finish()
            con.print(f"[dim]compacting the context ({esc(data.get('tokens_before'))} of "
                      f"{esc(data.get('context_window'))} tokens)…[/]")
        elif typ == "agent.context_compacted":
            con.print(f"[dim]context compacted: {esc(data.get('tokens_before'))} → "
                      f"{esc(data.get('tokens_after'))} tokens, {esc(data.get('turns_removed'))} "
                      "turns summarised[/]")
        elif typ == "client.reconnecting":
            if data.get("attempt") == 1:
                stream.note(Text("connection lost; reconnecting…", style="dim"))
        elif typ == "client.reconnected":
            if not data.get("replay_complete", True):
                stream.finish()
                con.print("[yellow]reconnected, but some events were lost; the chat "
                          "history has the full answer[/]")
        elif typ == "client.closed":
            stream.finish()
            self._closed(data)

    async def ask_tools(self, calls: list[dict[str, Any]]) -> dict[str, str]:
        verdicts: dict[str, str] = {}
        always: set[str] = set()
        for call in calls:
            call_id, name = str(call.get("id")), str(call.get("name"))
            self.console.print(render.tool_call(call))
            if name in always:
                verdicts[call_id] = "allow_chat"
                self.console.print("[dim]  allowed (always for this chat)[/]")
                continue
            verdict = await self.ask_verdict()
            if verdict == "cancel":
                self.console.print("[yellow]cancelling…[/]")
                if self.sock and not await self.sock.cancel() and self.chat_id:
                    await self.api.cancel(self.chat_id)
                for c in calls:
                    verdicts.setdefault(str(c.get("id")), "deny")
                return verdicts
            verdicts[call_id] = verdict
            if verdict == "allow_chat":
                always.add(name)
        return verdicts

    async def ask_verdict(self) -> str:
        """``allow``, ``deny``, ``allow_chat`` or ``cancel``: one key press in a terminal
        (Ctrl-C and Ctrl-D cancel; other keys are ignored), else a line."""
        fd = _stdin_fd()
        if not keys.is_terminal(fd):
            while True:
                try:
                    answer = (await self.ask(QUESTION)).strip().lower()
                except EOFError:
                    return "cancel"
                if answer in VERDICTS:
                    return VERDICTS[answer]
                self.console.print("[dim]answer y, n, a or c[/]")
        assert fd is not None
        with keys.KeyMode(fd) as term:  # before the question: a key is never typed too soon
            self.console.print(Text(QUESTION), end="")
            while True:
                key = (await term.read()).lower()
                verdict = "cancel" if key in (keys.CTRL_C, keys.CTRL_D) else VERDICTS.get(key)
                if verdict is not None:
                    break
        self.console.print(Text(SAID[verdict], style="bold"))
        return verdict

    # ------------------------------------------------------------------ commands
    async def handle(self, line: str) -> None:
        if not line.startswith("/"):
            await self.send(line)
            return
        name, _, rest = line[1:].partition(" ")
        rest = rest.strip()
        commands: dict[str, Callable[[str], Awaitable[None]]] = {
            "help": self.cmd_help, "chats": self.cmd_chats, "chat": self.cmd_chat,
            "profiles": self.cmd_profiles, "profile": self.cmd_profile,
            "permissions": self.cmd_permissions, "context": self.cmd_context,
            "compact": self.cmd_compact, "cancel": self.cmd_cancel,
            "attach": self.cmd_attach, "get": self.cmd_get,
            "quit": self.cmd_quit, "exit": self.cmd_quit,
        }
        command = commands.get(name.lower())
        if command is None:
            self.console.print(f"[red]unknown command /{esc(name)}[/] [dim](/help lists them)[/]")
            return
        await command(rest)

    async def cmd_attach(self, rest: str) -> None:
        if not rest or not self.chat_id:
            self.console.print("[red]usage: /attach <local file> (in a chat)[/]")
            return
        try:
            path = await self.api.attach(self.chat_id, Path(rest).expanduser())
        except (ApiError, OSError) as exc:
            self.console.print(f"[red]{esc(exc)}[/]")
            return
        self.attachments.append(path)
        self.console.print(f"[dim]attached {esc(path)} (sent with your next message)[/]")

    async def cmd_get(self, rest: str) -> None:
        remote, _, local = rest.partition(" ")
        if not remote:
            self.console.print("[red]usage: /get <workspace path> [local path][/]")
            return
        target = Path(local.strip() or remote.rstrip("/").rpartition("/")[2]).expanduser()
        try:
            size = await self.api.download_file(remote, target)
        except (ApiError, OSError) as exc:
            self.console.print(f"[red]{esc(exc)}[/]")
            return
        self.console.print(f"[dim]saved {esc(target)} ({size} bytes)[/]")

    async def cmd_help(self, rest: str) -> None:
        self.console.print(HELP, markup=False)

    async def cmd_quit(self, rest: str) -> None:
        raise Exit(0)

    async def cmd_chats(self, rest: str) -> None:
        chats = await self.api.list_chats(limit=20)
        if not chats:
            self.console.print("[dim]no chats yet[/]")
            return
        table = Table(box=None, pad_edge=False, show_header=True, header_style="dim")
        table.add_column("")
        table.add_column("id")
        table.add_column("title")
        table.add_column("profile", style="dim")
        table.add_column("updated", style="dim")
        for chat in chats:
            current = chat["chat_id"] == self.chat_id
            table.add_row("*" if current else "", chat["chat_id"][:8],
                          esc(render.short(chat.get("title") or "untitled", 40)),
                          esc(chat.get("profile") or ""),
                          str(chat.get("updated_at", ""))[:16].replace("T", " "),
                          style="bold" if current else None)
        self.console.print(table)

    async def cmd_chat(self, rest: str) -> None:
        if not rest:
            self.show_chat(self.chat, keep=0)
            return
        word, _, title = rest.partition(" ")
        if word == "new":
            chat = await self.api.create_chat(title=title.strip())
            await self.open_chat(chat["chat_id"], fresh=True)
            return
        chat_id = await self._resolve_chat(word)
        if chat_id:
            await self.open_chat(chat_id)

    async def _resolve_chat(self, prefix: str) -> Optional[str]:
        if len(prefix) == 36:
            return prefix
        matches = [c["chat_id"] for c in await self.api.list_chats(limit=100)
                   if c["chat_id"].startswith(prefix.lower())]
        if len(matches) == 1:
            return matches[0]
        self.console.print(f"[red]{esc('no' if not matches else 'more than one')} chat matches "
                           f"{esc(repr(prefix))}[/] [dim](/chats lists them)[/]")
        return None

    async def cmd_profiles(self, rest: str) -> None:
        body = await self.api.profiles()
        current = await self.api.chat_profile(self.chat_id) if self.chat_id else None
        profiles = body.get("profiles") or {}
        if not profiles:
            self.console.print("[dim]no profiles yet (an admin creates them)[/]")
            return
        table = Table(box=None, pad_edge=False, header_style="dim")
        for col in ("", "name", "provider", "model", "context"):
            table.add_column(col)
        for name, prof in profiles.items():
            marks = ("*" if name == (current or body.get("default")) else "")
            notes = []
            if name == body.get("default"):
                notes.append("default")
            if name == current:
                notes.append("this chat")
            table.add_row(marks, esc(name), esc(prof.get("provider", "")),
                          esc(prof.get("model", "")),
                          str(prof.get("context_window") or "") + (
                              f"  ({', '.join(notes)})" if notes else ""))
        self.console.print(table)

    async def cmd_profile(self, rest: str) -> None:
        word, _, name = rest.partition(" ")
        if not word:
            current = await self.api.chat_profile(self.chat_id) if self.chat_id else None
            self.console.print(f"this chat uses {current or 'the default profile'}",
                               markup=False)
            return
        if word != "use" or not name.strip():
            self.console.print("[red]usage: /profile use <name>[/]")
            return
        if not self.chat_id:
            return
        chosen = await self.api.set_chat_profile(self.chat_id, name.strip())
        self.chat["profile"] = chosen
        self.console.print(f"this chat now uses profile [bold]{esc(chosen)}[/]")

    async def cmd_permissions(self, rest: str) -> None:
        body = await self.api.permissions()
        self.console.print(f"mode [bold]{esc(body.get('mode'))}[/]")
        overrides = body.get("tool_overrides") or {}
        for tool, level in sorted(overrides.items()):
            style = {"allow": "green", "deny": "red"}.get(level, "yellow")
            self.console.print(f"  {esc(tool)}: [{style}]{esc(level)}[/]")
        if not overrides:
            self.console.print("[dim]  no per-tool overrides[/]")

    async def cmd_context(self, rest: str) -> None:
        if not self.chat_id:
            return
        self.console.print(render.context_bar(await self.api.context(self.chat_id)))

    async def cmd_compact(self, rest: str) -> None:
        if not self.chat_id:
            return
        try:
            body = await self.api.compact(self.chat_id)
        except ApiError as exc:
            if exc.status in (400, 409):
                self.console.print(f"[yellow]{esc(exc.message)}[/]")
                return
            raise
        self.console.print(f"compacted: {body.get('tokens_before')} → {body.get('tokens_after')}"
                           f" tokens, {body.get('turns_removed')} turns summarised")

    async def cmd_cancel(self, rest: str) -> None:
        if not self.chat_id:
            return
        if await self.api.cancel(self.chat_id):
            self.console.print("[yellow]cancelling the running turn[/]")
        else:
            self.console.print("[dim]no turn is running[/]")
