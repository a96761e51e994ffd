"""agents.compaction: what to summarise, what it costs, what the summariser is sent.
Plain functions, no database and no network."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from agents import compaction as c
from agents import tokens

MODEL = "fake-model"  # unknown: counted with cl100k + margin


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str, calls: list[tuple[str, str, str]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = [{"id": i, "type": "function",
                                  "function": {"name": n, "arguments": a}}
                                 for i, n, a in calls]
    return message


def tool(call_id: str, text: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def exchanges(n: int) -> list[dict[str, Any]]:
    return [m for i in range(n) for m in (user(f"question {i}"), assistant(f"answer {i}"))]


# --- planning ----------------------------------------------------------------------

def test_it_keeps_the_last_four_exchanges_and_summarises_the_rest() -> None:
    messages = exchanges(6)

    plan = c.plan_compaction(messages, keep=4)

    assert plan == c.Plan(cut=4, removed=2, kept=4)
    assert messages[plan.cut:] == exchanges(6)[4:]
    assert messages[plan.cut] == user("question 2")


@pytest.mark.parametrize("n", [0, 1, 4])
def test_four_exchanges_or_fewer_leave_nothing_to_compact(n: int) -> None:
    assert c.plan_compaction(exchanges(n), keep=4) is None


def test_an_assistant_tool_call_stays_with_its_results() -> None:
    messages = [
        *exchanges(2),
        user("run it"), assistant("", [("c1", "bash", '{"command": "ls"}'),
                                       ("c2", "read", '{"path": "a"}')]),
        tool("c1", "a b"), tool("c2", "text of a"), assistant("done"),
        *exchanges(3),
    ]

    for keep in (1, 2, 3, 4, 5):
        plan = c.plan_compaction(messages, keep=keep)
        assert plan is not None
        kept, gone = messages[plan.cut:], messages[:plan.cut]
        assert kept[0]["role"] == "user"
        kept_calls = {call["id"] for m in kept for call in m.get("tool_calls") or ()}
        gone_calls = {call["id"] for m in gone for call in m.get("tool_calls") or ()}
        assert {m["tool_call_id"] for m in kept if m["role"] == "tool"} <= kept_calls
        assert {m["tool_call_id"] for m in gone if m["role"] == "tool"} <= gone_calls


def test_messages_before_the_first_user_message_go_with_the_oldest_exchange() -> None:
    messages = [assistant("[interrupted]"), *exchanges(5)]

    plan = c.plan_compaction(messages, keep=4)

    assert plan == c.Plan(cut=3, removed=1, kept=4)


@pytest.mark.parametrize("used, exchanges_, expected", [
    (750, 5, False),   # at the threshold: not yet
    (751, 5, True),    # past it
    (751, 4, False),   # past it, but every exchange is kept anyway
    (10_000, 4, False),
    (100, 50, False),
])
def test_compaction_starts_past_the_threshold_with_more_than_the_kept_exchanges(
        used: int, exchanges_: int, expected: bool) -> None:
    assert c.should_compact(used, 1000, 0.75, exchanges_, 4) is expected


# --- counting ----------------------------------------------------------------------

TOOLS = [{"type": "function", "function": {"name": "bash", "parameters": {
    "type": "object", "properties": {"command": {"type": "string"}}}}}]


def test_without_usage_everything_is_counted_offline_tools_included() -> None:
    messages = [{"role": "system", "content": "be brief"}, *exchanges(2)]

    assert c.estimate_tokens(messages, TOOLS, MODEL) == \
        tokens.count_messages(messages, MODEL) + tokens.count_tools(TOOLS, MODEL)


def test_the_reported_usage_counts_for_what_was_sent_and_the_rest_is_counted() -> None:
    messages = [{"role": "system", "content": "be brief"}, *exchanges(3), user("more")]

    used = c.estimate_tokens(messages, TOOLS, MODEL, c.Anchor(input_tokens=5000, tail=2))

    assert used == 5000 + tokens.count_message(assistant("answer 2"), MODEL) + \
        tokens.count_message(user("more"), MODEL)


@pytest.mark.parametrize("anchor", [c.Anchor(0, 2), c.Anchor(5000, 0), c.Anchor(5000, 99)])
def test_a_usage_that_does_not_fit_the_messages_is_ignored(anchor: c.Anchor) -> None:
    messages = exchanges(2)

    assert c.estimate_tokens(messages, [], MODEL, anchor) == \
        tokens.count_messages(messages, MODEL)


def test_counting_needs_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("counting tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    tokens.clear_encoding_cache()
    for model in ("gpt-4o", "claude-sonnet-4", "my-local-model", ""):
        assert c.estimate_tokens(exchanges(3), TOOLS, model) > 0


# --- tool results ------------------------------------------------------------------

def test_a_tool_result_larger_than_a_quarter_of_the_window_is_cut_with_a_note() -> None:
    big = tool("c1", "word " * 5000)
    small = tool("c2", "ok")
    messages = [user("go"), assistant("", [("c1", "bash", "{}"), ("c2", "bash", "{}")]),
                big, small]

    capped = c.cap_tool_results(messages, MODEL, window=4000)

    assert tokens.count_text(capped[2]["content"], MODEL) <= 1000
    assert capped[2]["content"].startswith("word word")
    assert "tool output truncated by the gateway" in capped[2]["content"]
    assert capped[2]["tool_call_id"] == "c1"
    assert capped[3] is small and capped[0] is messages[0]
    assert big["content"] == "word " * 5000  # the input is not changed


def test_a_long_user_message_is_not_cut() -> None:
    long = user("word " * 5000)

    assert c.cap_tool_results([long], MODEL, window=4000)[0] is long


# --- the summary -------------------------------------------------------------------

def test_the_summary_is_a_system_message_that_says_what_it_is() -> None:
    message = c.summary_message("They set up the project.")

    assert message["role"] == "system"
    assert message["content"].startswith("Summary of the earlier conversation")
    assert message["content"].endswith("They set up the project.")
    assert c.is_summary_message(message)
    assert not c.is_summary_message({"role": "system", "content": "You are an agent."})


@pytest.mark.parametrize("window, replaced", [(1000, 10), (8192, 50_000), (200_000, 50_000),
                                              (1000, 1000)])
def test_the_summary_budget_frees_room(window: int, replaced: int) -> None:
    budget = c.summary_budget(window, replaced)

    assert c.SUMMARY_MIN_TOKENS <= budget <= c.SUMMARY_MAX_TOKENS
    assert budget <= max(c.SUMMARY_MIN_TOKENS, window // 10, 1)
    if replaced >= 2 * c.SUMMARY_MIN_TOKENS:
        assert budget <= replaced // 2


def test_the_transcript_names_who_said_what_and_which_tools_ran() -> None:
    messages = [user("list the files"),
                assistant("Let me look.", [("c1", "bash", '{"command": "ls"}')]),
                tool("c1", "a.txt b.txt"), assistant("Two files.")]

    text = c.render_transcript(messages, None, MODEL, budget=2000)

    assert text.splitlines() == [
        "User: list the files", "", "Assistant: Let me look.",
        'Assistant called bash({"command": "ls"})', "", "Result of bash: a.txt b.txt", "",
        "Assistant: Two files."]


def test_the_transcript_fits_its_budget_and_keeps_the_previous_summary() -> None:
    messages = [m for i in range(60) for m in (user(f"question {i} " * 40),
                                               assistant(f"answer {i} " * 40))]

    text = c.render_transcript(messages, "EARLIER: they met.", MODEL, budget=1500)

    assert tokens.count_text(text, MODEL) <= 1500
    assert text.startswith("Summary of what came before:\nEARLIER: they met.")
    assert "older message(s) left out" in text
    assert "answer 59" in text and "question 0 " not in text


def test_a_huge_tool_output_is_cut_in_the_transcript() -> None:
    messages = [user("go"), assistant("", [("c1", "bash", "{}")]), tool("c1", "x " * 50_000)]

    text = c.render_transcript(messages, None, MODEL, budget=4000)

    assert tokens.count_text(text, MODEL) <= 4000
    assert "User: go" in text and "Result of bash: x x" in text


def test_the_summary_request_is_an_instruction_and_the_transcript() -> None:
    request = c.summary_request(exchanges(3), None, MODEL, window=8192, budget=400)

    assert [m["role"] for m in request] == ["system", "user"]
    assert "300 words" in request[0]["content"]
    assert "User: question 0" in request[1]["content"]
    assert "Assistant: answer 2" in request[1]["content"]


def test_the_module_stays_free_of_django() -> None:
    code = ("import sys, agents.compaction; "
            "sys.exit(any(m.split('.')[0] in ('django', 'channels', 'rest_framework') "
            "for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_the_byte_bound_is_never_below_the_token_estimate():
    from agents import compaction as plan

    cases = [
        [{"role": "user", "content": "hello " * 200}],
        [{"role": "user", "content": "日本語のテキスト" * 50},
         {"role": "assistant", "content": None, "tool_calls": [
             {"id": "c", "type": "function", "function": {"name": "bash",
                                                          "arguments": '{"command": "ls"}'}}]},
         {"role": "tool", "tool_call_id": "c", "content": "a\nb\n" * 100}],
        [{"role": "user", "content": [{"type": "text", "text": "see"},
                                      {"type": "image_url", "image_url": {"url": "x"}}]}],
    ]
    tools = [{"type": "function", "function": {"name": "bash", "parameters": {}}}]
    for messages in cases:
        for model in ("gpt-4o", "gpt-4", "llama3.1"):
            assert plan.upper_bound_tokens(messages, tools) >= \
                plan.estimate_tokens(messages, tools, model)
