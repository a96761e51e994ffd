"""The dashboard's files panel in headless Chromium against a real ``serve``: a file
dragged onto the chat is uploaded and attached, the turn's tool writes a file that appears
marked in the panel, it downloads intact, previews, and is deleted after a confirmation.
Screenshots go to ``test-artifacts/screenshots/``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.dashboard.test_dashboard import (  # noqa: F401  (fixtures used by name)
    Pages, browser, fake, new_chat, open_chat, pages, send, server, shot, wait_idle)
from tests.e2e.server import ServeProcess
from tests.fake_upstream import FakeUpstream, Text, ToolCalls

DROP = """() => {
  const transfer = new DataTransfer();
  transfer.items.add(new File(['hello from the drop\\n'], 'dropped.txt', {type: 'text/plain'}));
  return transfer;
}"""


def test_a_dropped_file_is_attached_and_the_agents_file_is_marked_and_downloaded(
        pages: Pages, server: ServeProcess, fake: FakeUpstream, tmp_path: Path) -> None:
    with server.client() as http:
        assert http.put("/api/permissions", json={"mode": "autonomous"}).status_code == 200
    chat_id = new_chat(server, title="files")
    page = pages.signed_in(server.admin_token)
    open_chat(page, server, chat_id)

    transfer = page.evaluate_handle(DROP)
    page.dispatch_event("#chat-view", "drop", {"dataTransfer": transfer})
    page.wait_for_selector("#attach-chips .chip:has-text('dropped.txt')")
    page.wait_for_selector(f"#files-list li[data-path='uploads'][data-type='dir']")
    shot(page, "files-attached")

    fake.enqueue(ToolCalls([("w1", "write", {"path": "report.md",
                                             "content": "# Report\n\nwritten by the agent\n"})]),
                 Text("I wrote report.md."))
    send(page, "summarise the dropped file")
    wait_idle(page)
    row = page.wait_for_selector("#files-list li.agent[data-path='report.md']")
    note = [b["text"] for b in fake.requests[0]["messages"][-1]["content"]
            if b["type"] == "text" and b["text"].startswith("[Attached file:")]
    assert note and f"uploads/{chat_id}/dropped.txt" in note[0]
    assert page.locator("#attach-chips").is_hidden()  # sent, so no longer pending
    # The message's text and the attachment's note are two paragraphs, not one run-on.
    bubble = page.locator("#transcript .msg.user .bubble").last
    assert bubble.inner_text() == f"summarise the dropped file\n\n{note[0]}"
    shot(page, "files-agent-marked")

    with page.expect_download() as info:
        row.query_selector("button.download").click()
    saved = tmp_path / "report.md"
    info.value.save_as(saved)
    assert saved.read_text() == "# Report\n\nwritten by the agent\n"

    row.query_selector("button.name").click()
    page.wait_for_selector("#files-preview pre:has-text('written by the agent')")
    shot(page, "files-preview")

    page.once("dialog", lambda dialog: dialog.accept())
    row.query_selector("button.delete").click()
    page.wait_for_selector("#files-list li[data-path='report.md']", state="detached")
    with server.client() as http:
        names = [e["name"] for e in http.get("/api/files").json()["entries"]]
        assert http.put("/api/permissions", json={"mode": "interactive"}).status_code == 200
    assert "report.md" not in names
