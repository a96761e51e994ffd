"""One chat's WebSocket: connect, read events into a queue, reconnect with ``?since=``.

Events are the gateway's envelopes (``{"type", "data", "seq", "timestamp"}``). The socket
adds a few of its own, all typed ``client.*``:

- ``client.reconnecting`` ``{"code", "attempt"}``: the connection dropped, retrying;
- ``client.reconnected`` ``{"replay_complete": bool, "state": {...}}``: back, with the
  missed events replayed after it (when ``replay_complete`` is false some were lost);
- ``client.closed`` ``{"code", "reason"}``: the socket is gone for good (4001 bad token,
  4004 no such chat, or reconnecting failed).
"""

from __future__ import annotations

import asyncio
import collections
import json
from typing import Any, Optional
from urllib.parse import quote

import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from . import __version__

CLOSE_UNAUTHORIZED = 4001
CLOSE_NOT_FOUND = 4004
RECONNECT_DELAYS = (0.2, 0.5, 1, 2, 3, 5, 5, 5, 5)


class SessionError(Exception):
    """The socket could not be opened (``code`` is a close code or an HTTP status)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def is_auth(self) -> bool:
        return self.code in (CLOSE_UNAUTHORIZED, 401, 403)


def _close_message(code: int) -> str:
    if code == CLOSE_UNAUTHORIZED:
        return "the gateway refused the token (close code 4001)"
    if code == CLOSE_NOT_FOUND:
        return "no such chat (close code 4004)"
    return f"the connection closed (code {code})"


def event(type_: str, **data: Any) -> dict[str, Any]:
    return {"type": type_, "data": data}


class ChatSocket:
    def __init__(self, ws_base: str, token: str, chat_id: str,
                 reconnect: bool = True) -> None:
        self.ws_base = ws_base
        self.token = token
        self.chat_id = chat_id
        self.reconnect = reconnect
        self.last_seq: Optional[int] = None
        self.state: dict[str, Any] = {}
        self._ws: Any = None
        self._events: collections.deque[dict[str, Any]] = collections.deque()
        self._wake = asyncio.Event()
        self._reader: Optional[asyncio.Task[None]] = None
        self._closing = False
        self.closed_code: Optional[int] = None

    # -- connecting -------------------------------------------------------------------
    async def _open(self, since: Optional[int]) -> dict[str, Any]:
        url = f"{self.ws_base}/ws/{quote(self.chat_id)}"
        if since is not None:
            url += f"?since={since}"
        try:
            ws = await websockets.connect(
                url, additional_headers={"Authorization": f"Bearer {self.token}"},
                user_agent_header=f"gateway-cli/{__version__}", max_size=16 * 2**20,
                open_timeout=10, close_timeout=2)
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise SessionError(status, f"the gateway refused the socket (HTTP {status})"
                               ) from None
        except (OSError, InvalidHandshake, asyncio.TimeoutError) as exc:
            raise SessionError(0, f"cannot open the socket at {url.split('?')[0]}: "
                               f"{exc or type(exc).__name__}") from None
        try:
            raw = await asyncio.wait_for(ws.recv(), 10)
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else 1006
            raise SessionError(code, _close_message(code)) from None
        except asyncio.TimeoutError:
            await ws.close()
            raise SessionError(0, "the gateway sent no agent.state within 10 s") from None
        state = json.loads(raw)
        if state.get("type") != "agent.state":
            await ws.close()
            raise SessionError(0, f"expected agent.state first, got {state.get('type')}")
        self._ws = ws
        self.state = state.get("data") or {}
        if since is None:
            self.last_seq = int(state.get("seq") or 0)
        return state

    async def connect(self) -> dict[str, Any]:
        """Open the socket; returns the first event (``agent.state``)."""
        state = await self._open(None)
        self._reader = asyncio.create_task(self._read_loop())
        return state

    async def close(self) -> None:
        self._closing = True
        if self._reader:
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, Exception):
                pass
        if self._ws is not None:
            try:
                await self._ws.close()
            except Exception:
                pass

    # -- reading ----------------------------------------------------------------------
    def _accept(self, raw: str | bytes) -> None:
        try:
            ev = json.loads(raw)
        except ValueError:
            return
        if not isinstance(ev, dict):
            return
        seq = ev.get("seq")
        typ = ev.get("type")
        per_socket = typ == "agent.state" or (
            typ == "agent.error" and (ev.get("data") or {}).get("code") == "invalid_event")
        if isinstance(seq, int) and not per_socket:
            if self.last_seq is not None and seq <= self.last_seq:
                return  # already seen (a replay overlapping live events)
            self.last_seq = seq
        self._put(ev)

    async def _read_loop(self) -> None:
        while True:
            code = 1006
            try:
                async for raw in self._ws:
                    self._accept(raw)
                code = self._ws.close_code or 1000
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else 1006
            except asyncio.CancelledError:
                raise
            except Exception:
                code = 1006
            if self._closing:
                return
            if code in (CLOSE_UNAUTHORIZED, CLOSE_NOT_FOUND) or not self.reconnect:
                self._finish(code)
                return
            if not await self._reconnect(code):
                return

    def _finish(self, code: int) -> None:
        self.closed_code = code
        self._put(event("client.closed", code=code, reason=_close_message(code)))

    async def _reconnect(self, code: int) -> bool:
        for attempt, delay in enumerate(RECONNECT_DELAYS, 1):
            self._put(event("client.reconnecting", code=code, attempt=attempt))
            await asyncio.sleep(delay)
            try:
                state = await self._open(self.last_seq)
            except SessionError as exc:
                if exc.code in (CLOSE_UNAUTHORIZED, CLOSE_NOT_FOUND, 401, 403, 404):
                    self._finish(exc.code)
                    return False
                continue
            data = state.get("data") or {}
            self._put(event("client.reconnected",
                                         replay_complete=data.get("replay_complete", True),
                                         state=data))
            return True
        self._finish(code)
        return False

    def _put(self, ev: dict[str, Any]) -> None:
        self._events.append(ev)
        self._wake.set()

    async def _next(self) -> dict[str, Any]:
        while not self._events:
            self._wake.clear()
            await self._wake.wait()
        return self._events.popleft()

    async def next_event(self, timeout: Optional[float] = None) -> dict[str, Any]:
        """The next event; raises ``asyncio.TimeoutError`` after ``timeout`` seconds.
        Cancelling the wait loses no event."""
        if timeout is None:
            return await self._next()
        return await asyncio.wait_for(self._next(), timeout)

    def unget(self, ev: dict[str, Any]) -> None:
        """Put an event back (or inject one) to be the next one read."""
        self._events.appendleft(ev)
        self._wake.set()

    def pending(self) -> bool:
        return bool(self._events)

    # -- sending ----------------------------------------------------------------------
    async def send(self, frame: dict[str, Any]) -> bool:
        """Send a frame; False when the socket is down (the caller may retry later)."""
        if self._ws is None:
            return False
        try:
            await self._ws.send(json.dumps(frame))
            return True
        except ConnectionClosed:
            return False

    async def send_message(self, content: str, stream: bool = True,
                           attachments: Optional[list[str]] = None) -> bool:
        frame: dict[str, Any] = {"type": "user_message", "content": content, "stream": stream}
        if attachments:
            frame["attachments"] = attachments  # workspace paths, uploaded before
        return await self.send(frame)

    async def cancel(self) -> bool:
        return await self.send({"type": "cancel"})

    async def approve(self, verdicts: dict[str, str]) -> bool:
        return await self.send({"type": "tool_approval", "verdicts": verdicts})
