"""Issue 15: with ``network_enabled`` the sandbox reached the gateway's own port and every
service on the host's loopback. The network now goes through slirp4netns with
``--disable-host-loopback``: outbound only.

What this can show without the internet: the gateway's port, the upstream and Redis on the
host's loopback are unreachable (both as 127.0.0.1, which is the sandbox's own, and through
slirp's host alias 10.0.2.2), while a listener on the host's *non-loopback* address, an
ordinary outside address as far as the sandbox can tell, answers; and the sandbox has its
slirp interface with a default route. Each on the cold path (a new sandbox and slirp4netns
per call) and in a warm sandbox (one kept per chat, its network attached once)."""

from __future__ import annotations

import shutil
import socket
import threading
from typing import Iterator

import pytest

from tests.conftest import need
from tests.e2e.server import ServeProcess
from tests.fake_upstream import FakeUpstream
from tests.security.sandbox_serve import (
    add_member,
    need_bubblewrap,
    run_bash,
    set_sandbox,
    start_server,
)

CONNECT = ("python3 -c \"import socket,sys\n"
           "try:\n"
           "    s=socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)\n"
           "    print('CONNECTED', s.recv(64).decode().strip())\n"
           "except OSError as e:\n"
           "    print('FAILED', e)\" {host} {port}")


def host_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # a UDP connect sends nothing
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


class Listener:
    """A TCP listener that greets whoever connects (a stand-in for the outside world)."""

    def __init__(self, host: str) -> None:
        self.sock = socket.create_server((host, 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            with conn:
                conn.sendall(b"hello-outside\n")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module", params=["warm", "cold"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           upstream_server: FakeUpstream) -> Iterator[ServeProcess]:
    need_bubblewrap()
    need(shutil.which("slirp4netns") is not None, "slirp4netns is not installed")
    proc = start_server(tmp_path_factory.mktemp("net") / "data", upstream_server,
                        env={"GATEWAY_SANDBOX_WARM": str(request.param == "warm").lower()})
    set_sandbox(proc, network_enabled=True)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def member(server: ServeProcess) -> str:
    return add_member(server, "mallory")


def test_the_gateways_own_port_is_unreachable(server, member, upstream):
    for host in ("127.0.0.1", "10.0.2.2"):
        out = run_bash(server, upstream, member, CONNECT.format(host=host, port=server.port))
        assert out["content"].startswith("FAILED"), (host, out)


def test_other_loopback_services_are_unreachable(server, member, upstream):
    local = Listener("127.0.0.1")  # like Redis or PostgreSQL on the host's loopback
    try:
        for host in ("127.0.0.1", "10.0.2.2"):
            out = run_bash(server, upstream, member, CONNECT.format(host=host, port=local.port))
            assert out["content"].startswith("FAILED"), (host, out)
        for port in (upstream.port, 6379, 5432):
            out = run_bash(server, upstream, member, CONNECT.format(host="10.0.2.2", port=port))
            assert out["content"].startswith("FAILED"), (port, out)
    finally:
        local.close()
    assert local.accepted == 0


def test_outbound_to_a_non_loopback_address_works(server, member, upstream):
    address = host_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to stand for outside")
    outside = Listener(address)
    try:
        out = run_bash(server, upstream, member, CONNECT.format(host=address, port=outside.port))
    finally:
        outside.close()
    assert out["content"].strip() == "CONNECTED hello-outside", out
    assert outside.accepted == 1


def test_the_sandbox_has_a_slirp_interface_with_a_default_route(server, member, upstream):
    out = run_bash(server, upstream, member, "cat /proc/net/route /etc/resolv.conf")["content"]
    routes = [line.split() for line in out.splitlines() if line.startswith("tap0")]
    assert any(fields[1] == "00000000" and fields[2] == "0202000A" for fields in routes), out
    assert "nameserver 10.0.2.3" in out
