"""The gateway's REST API, as an async client (``httpx``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote

import httpx

from . import __version__


class ApiError(Exception):
    """A failed HTTP call: ``status`` is 0 when the gateway could not be reached."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    @property
    def is_auth(self) -> bool:
        return self.status in (401, 403)

    def __str__(self) -> str:
        if self.status == 0:
            return self.message
        return f"{self.message} (HTTP {self.status} {self.code})"


def _error_from(response: httpx.Response) -> ApiError:
    code, message = "http_error", response.reason_phrase or "request failed"
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = str(body.get("error") or code)
        message = str(body.get("message") or body.get("detail") or message)
        fields = body.get("fields")
        if isinstance(fields, dict):
            extra = [f"{k}: {v}" for k, v in fields.items() if str(v) not in message]
            if extra:
                message += " (" + "; ".join(extra) + ")"
    if response.status_code == 401:
        message = f"authentication failed: {message}"
    return ApiError(response.status_code, code, message)


class GatewayAPI:
    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        self.url = url
        self._client = httpx.AsyncClient(
            base_url=url, timeout=timeout,
            headers={"Authorization": f"Bearer {token}",
                     "User-Agent": f"gateway-cli/{__version__}"})

    async def close(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> "GatewayAPI":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def request(self, method: str, path: str, json: Any = None,
                      params: Optional[dict[str, Any]] = None) -> Any:
        try:
            response = await self._client.request(method, path, json=json, params=params)
        except httpx.HTTPError as exc:
            raise ApiError(0, "unreachable",
                           f"cannot reach the gateway at {self.url}: {exc or type(exc).__name__}"
                           ) from None
        if response.status_code >= 400:
            raise _error_from(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ApiError(response.status_code, "bad_response",
                           f"the gateway answered {path} with something that is not JSON"
                           ) from None

    # -- workspace files (docs/files.md) ------------------------------------------------
    async def upload_file(self, local: Path, remote: str) -> dict[str, Any]:
        """Upload ``local`` to the workspace path ``remote``, in parts of the size the
        gateway accepts per request, so a file of any size costs one part of memory."""
        part = int((await self.request("GET", "/api/files"))["quota"]["max_part_bytes"])
        total = local.stat().st_size
        params: dict[str, Any] = {"path": remote, "total": total, "offset": 0}
        with local.open("rb") as handle:
            while True:
                body = await self._put(params, handle.read(part))
                if "path" in body:
                    return body
                params.update(offset=body["received"], upload=body["upload"])

    async def attach(self, chat_id: str, local: Path) -> str:
        """Upload a local file to ``uploads/<chat>/<name>``; the workspace path to send as
        an attachment."""
        if not local.is_file():
            raise OSError(f"{local}: not a file")
        return (await self.upload_file(local, f"uploads/{chat_id}/{local.name}"))["path"]

    async def _put(self, params: dict[str, Any], data: bytes) -> dict[str, Any]:
        try:
            response = await self._client.put("/api/files/content", params=params,
                                              content=data)
        except httpx.HTTPError as exc:
            raise ApiError(0, "unreachable", f"cannot reach the gateway at {self.url}: "
                                             f"{exc or type(exc).__name__}") from None
        if response.status_code >= 400:
            raise _error_from(response)
        return response.json()

    async def download_file(self, remote: str, local: Path) -> int:
        """Stream the workspace file ``remote`` into ``local``; returns its size."""
        size = 0
        try:
            async with self._client.stream("GET", "/api/files/content",
                                           params={"path": remote}) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise _error_from(response)
                with local.open("wb") as out:
                    async for chunk in response.aiter_bytes():
                        out.write(chunk)
                        size += len(chunk)
        except httpx.HTTPError as exc:
            raise ApiError(0, "unreachable", f"cannot reach the gateway at {self.url}: "
                                             f"{exc or type(exc).__name__}") from None
        return size

    # -- health and chats -------------------------------------------------------------
    async def health(self) -> dict[str, Any]:
        return await self.request("GET", "/health")

    async def list_chats(self, limit: int = 20) -> list[dict[str, Any]]:
        body = await self.request("GET", "/api/chats", params={"limit": limit})
        return list(body.get("chats", []))

    async def create_chat(self, title: str = "", profile: Optional[str] = None
                          ) -> dict[str, Any]:
        payload: dict[str, Any] = {"title": title[:200]}
        if profile:
            payload["profile"] = profile
        return await self.request("POST", "/api/chats", json=payload)

    async def get_chat(self, chat_id: str) -> dict[str, Any]:
        return await self.request("GET", f"/api/chats/{quote(chat_id)}")

    async def rename_chat(self, chat_id: str, title: str) -> dict[str, Any]:
        return await self.request("PATCH", f"/api/chats/{quote(chat_id)}",
                                  json={"title": title[:200]})

    async def delete_chat(self, chat_id: str) -> None:
        await self.request("DELETE", f"/api/chats/{quote(chat_id)}")

    async def context(self, chat_id: str) -> dict[str, Any]:
        return await self.request("GET", f"/api/chats/{quote(chat_id)}/context")

    async def compact(self, chat_id: str) -> dict[str, Any]:
        return await self.request("POST", f"/api/chats/{quote(chat_id)}/compact")

    async def cancel(self, chat_id: str) -> bool:
        body = await self.request("POST", f"/api/chats/{quote(chat_id)}/cancel")
        return bool(body and body.get("cancelled"))

    # -- profiles and permissions -----------------------------------------------------
    async def profiles(self) -> dict[str, Any]:
        return await self.request("GET", "/api/profiles")

    async def chat_profile(self, chat_id: str) -> Optional[str]:
        body = await self.request("GET", f"/api/chats/{quote(chat_id)}/profile")
        return body.get("profile_name")

    async def set_chat_profile(self, chat_id: str, name: str) -> Optional[str]:
        body = await self.request("PUT", f"/api/chats/{quote(chat_id)}/profile",
                                  json={"name": name})
        return body.get("profile_name")

    async def permissions(self) -> dict[str, Any]:
        return await self.request("GET", "/api/permissions")
