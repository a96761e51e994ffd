"""Logs never include a query string: a socket's token travels in ``?token=`` (issue 16).

The request log writes the path only; what other loggers write (daphne's access log with
``DEBUG``, Django's and daphne's error messages and tracebacks) goes through the
formatters, which remove any URL's query string. The real-server check is in
``test_input_serve.py``.
"""

from __future__ import annotations

import io
import logging

from daphne.access import AccessLogGenerator

from gateway.logs import JsonFormatter, PlainFormatter, without_query
from gateway.management.commands.serve import _access_log_without_query

TOKEN = "gw_" + "ab" * 32


def record(message: str, *args: object) -> logging.LogRecord:
    return logging.makeLogRecord({"msg": message, "args": args, "levelname": "ERROR",
                                  "name": "daphne.server"})


def test_both_formatters_remove_query_strings_from_messages_and_tracebacks() -> None:
    try:
        raise ValueError(f"could not route /ws/abc?token={TOKEN}")
    except ValueError:
        import sys
        failing = record("Exception inside application: %s", f"/ws/x?token={TOKEN}&since=1")
        failing.exc_info = sys.exc_info()

    for formatter in (JsonFormatter(), PlainFormatter("%(levelname)s %(message)s")):
        line = formatter.format(failing)
        assert TOKEN not in line
        assert "/ws/x?[query removed]" in line


def test_text_without_a_url_query_is_left_alone() -> None:
    assert without_query("is it? yes (a?b)") == "is it? yes (a?b)"
    assert without_query("GET /api/chats 200") == "GET /api/chats 200"


def test_daphnes_access_log_is_written_without_the_query() -> None:
    stream = io.StringIO()
    log = _access_log_without_query(AccessLogGenerator(stream))

    log("http", "complete", {"path": f"/api/chats?token={TOKEN}", "status": 200,
                             "method": "GET", "client": "127.0.0.1:5000", "size": 10})
    log("websocket", "connecting", {"path": f"/ws/abc?token={TOKEN}",
                                    "client": "127.0.0.1:5001"})

    written = stream.getvalue()
    assert TOKEN not in written
    assert "GET /api/chats?[query removed]" in written
    assert "WSCONNECTING /ws/abc?[query removed]" in written
