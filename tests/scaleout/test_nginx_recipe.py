"""docs/deploy.md's nginx config, run for real in front of two server processes."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import websockets

from tests.conftest import need
from tests.e2e.server import ROOT, free_port
from tests.fake_upstream import Text


def nginx_config(front_port: int, backends: list[int], prefix: Path) -> str:
    doc = (ROOT / "docs" / "deploy.md").read_text()
    block = re.search(r"```nginx\n(.*?)```", doc, re.S).group(1)
    servers = "".join(f"    server 127.0.0.1:{port};\n" for port in backends)
    block = re.sub(r"(upstream gateway \{\n)(    server [^\n]+\n)+", rf"\g<1>{servers}", block)
    block = block.replace("listen 443 ssl;", f"listen 127.0.0.1:{front_port};")
    block = block.replace("server_name gateway.example.com;", "server_name localhost;")
    temp = "".join(f"    {name}_temp_path {prefix}/{name};\n"
                   for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"pid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\n"
            f"events {{}}\nhttp {{\n    access_log off;\n{temp}{block}}}\n")


def test_the_documented_nginx_config_serves_http_and_websockets(cluster, upstream, tmp_path):
    need(shutil.which("nginx") is not None, "nginx is not installed")
    a, b = cluster
    front = free_port()
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_config(front, [a.port, b.port], prefix))
    proc = subprocess.Popen(["nginx", "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"],
                            stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{front}"
        deadline = time.monotonic() + 10
        while True:
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise AssertionError(proc.stderr.read() if proc.poll() else "no answer")
                time.sleep(0.1)
        headers = {"Authorization": f"Bearer {a.admin_token}"}
        chat_ids = [httpx.post(base + "/api/chats", headers=headers).json()["chat_id"]
                    for _ in range(4)]
        for i in range(4):
            upstream.enqueue(Text(f"reply number {i}", chunk_size=3))

        async def turn(chat_id: str) -> str:
            url = f"ws://127.0.0.1:{front}/ws/{chat_id}?token={a.admin_token}"
            async with websockets.connect(url) as ws:
                assert json.loads(await ws.recv())["type"] == "agent.state"
                await ws.send(json.dumps({"type": "user_message", "content": "hi"}))
                text = ""
                while True:
                    event = json.loads(await asyncio.wait_for(ws.recv(), 15))
                    if event["type"] == "agent.text_delta":
                        text += event["data"]["text"]
                    if event["type"] == "agent.turn_complete":
                        return text

        async def all_turns() -> list[str]:
            return list(await asyncio.gather(*(turn(c) for c in chat_ids)))

        texts = asyncio.run(all_turns())
        assert sorted(texts) == [f"reply number {i}" for i in range(4)]
    finally:
        proc.terminate()
        proc.wait(10)
