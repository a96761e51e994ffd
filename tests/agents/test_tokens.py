"""Tests for agents.tokens (plain Python: runs with ``-p no:django``)."""

from __future__ import annotations

import json
import logging
import math
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agents import tokens
from agents.tokens import (
    CONTEXT_WINDOWS,
    DEFAULT_CONTEXT_WINDOW,
    IMAGE_TOKENS,
    IMAGE_TOKENS_LOW_DETAIL,
    REPLY_PRIMING_TOKENS,
    TOKENS_PER_MESSAGE,
    TOKENS_PER_NAME,
    TOKENS_PER_TOOL_CALL,
    context_window_for,
    count_message,
    count_messages,
    count_text,
    count_tools,
    encoding_name_for,
    normalize_model,
    truncate_to_tokens,
)

REPO = Path(__file__).resolve().parents[2]
TOKENS_PY = REPO / "agents" / "tokens.py"

# Token ids as published for tiktoken (cl100k "tiktoken is great!" is the
# example in tiktoken's README) and re-checked against the encodings below.
KNOWN = {
    "cl100k_base": {
        "hello world": [15339, 1917],
        "tiktoken is great!": [83, 1609, 5963, 374, 2294, 0],
        "Hello, world! 👋": [9906, 11, 1917, 0, 62904, 233],
        "日本語のテキスト": [9080, 22656, 45918, 252, 16144, 57933, 62903, 71634],
    },
    "o200k_base": {
        "hello world": [24912, 2375],
        "tiktoken is great!": [83, 8251, 2488, 382, 2212, 0],
        "Hello, world! 👋": [13225, 11, 2375, 0, 61138, 233],
        "日本語のテキスト": [9048, 40909, 3385, 16056, 18368, 38236],
    },
}
MODEL_FOR = {"cl100k_base": "gpt-4", "o200k_base": "gpt-4o"}

SAMPLES = [
    "",
    " ",
    "hello world",
    "<|endoftext|> is just text here",
    "def f(x):\n    return {'a': [1, 2, 3]}\n\n\n",
    "Ünïcödé, 中文, العربية, emoji 👩‍💻🚀",
    "1234567890" * 50,
    '{"path":"/tmp/x","lines":[1,2,3]}',
]


def approx(raw: int) -> int:
    """The documented approximation: raw cl100k count + 10 %, rounded up."""
    return raw + math.ceil(raw * tokens.APPROXIMATION_MARGIN_PERCENT / 100)


def cl100k(text: str) -> int:
    return count_text(text, "gpt-4")


@pytest.fixture
def fresh_cache():
    tokens.clear_encoding_cache()
    yield
    tokens.clear_encoding_cache()


# ---------------------------------------------------------------------------
# Module hygiene
# ---------------------------------------------------------------------------


def test_module_is_plain_python_and_loads_tokenizer_lazily():
    # Loaded by path in a fresh interpreter so the lead's agents/__init__.py
    # (or settings) cannot influence the result.
    code = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("tokens_under_test", {str(TOKENS_PY)!r})
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
roots = {{name.split(".")[0] for name in sys.modules}}
bad = roots & {{"django", "channels", "rest_framework", "tiktoken"}}
assert not bad, bad
assert "bpe_openai" not in roots, "tokenizer must load lazily"
assert mod.count_text("hello world", "gpt-4o") == 2
assert "tiktoken" not in {{name.split(".")[0] for name in sys.modules}}
"""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)


# ---------------------------------------------------------------------------
# Encodings and exact counts
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", sorted(KNOWN))
def test_known_token_ids_and_counts(encoding):
    model = MODEL_FOR[encoding]
    codec = tokens._get_codec(encoding)
    for text, ids in KNOWN[encoding].items():
        assert list(codec.units(text)) == ids, text
        assert count_text(text, model) == len(ids), text


def test_hello_world_is_two_tokens_in_both():
    assert count_text("hello world", "gpt-4") == 2
    assert count_text("hello world", "gpt-4o") == 2


@pytest.mark.parametrize("encoding", sorted(KNOWN))
def test_fast_path_agrees_with_public_bpe_openai_api(encoding):
    # agents.tokens talks to bpe_openai's Rust bindings directly; prove they
    # give what the package's public tiktoken-style API gives.
    import bpe_openai

    public = bpe_openai.get_encoding(encoding)
    for text in SAMPLES + list(KNOWN[encoding]):
        assert count_text(text, MODEL_FOR[encoding]) == len(public.encode_ordinary(text)), text


def test_empty_and_none_text_is_zero():
    for model in ("gpt-4o", "gpt-4", "llama3", "totally-unknown"):
        assert count_text("", model) == 0
        assert count_text(None, model) == 0  # defensive; never None back


def test_special_token_text_is_counted_as_plain_text():
    # Tool output may contain "<|endoftext|>"; it must be counted, not raise.
    assert count_text("<|endoftext|>", "gpt-4") == 7


def test_lone_surrogates_are_counted_not_raised():
    assert count_text("a\ud800b", "gpt-4o") > 0
    assert truncate_to_tokens("x\ud800 " * 500, "gpt-4o", 20).endswith("window]")


@pytest.mark.parametrize(
    "model,expected",
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("chatgpt-4o-latest", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("gpt-4.5-preview", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("gpt-5-mini-2025-08-07", "o200k_base"),
        ("o1", "o200k_base"),
        ("o1-mini", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o4-mini-2025-04-16", "o200k_base"),
        ("openai/gpt-4o", "o200k_base"),
        ("OpenRouter/OpenAI/GPT-4o", "o200k_base"),
        ("ft:gpt-4o-mini-2024-07-18:my-org:custom:abc123", "o200k_base"),
        ("gpt-oss:20b", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-0613", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-4-32k", "cl100k_base"),
        ("gpt-3.5-turbo-0125", "cl100k_base"),
        ("gpt-35-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("text-embedding-ada-002", "cl100k_base"),
        ("claude-3-5-sonnet-20241022", None),
        ("anthropic/claude-sonnet-4", None),
        ("llama3.1:8b", None),
        ("qwen2.5:7b", None),
        ("mistral", None),
        ("text-davinci-003", None),  # p50k: not loadable offline -> approximated
        ("", None),
        ("gpt-4x", None),  # word boundary: not gpt-4
        ("o1x", None),
    ],
)
def test_encoding_name_for(model, expected):
    assert encoding_name_for(model) == expected


# ---------------------------------------------------------------------------
# Approximation for other models
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["llama3.1:8b", "claude-3-5-sonnet", "qwen3", "mistral", "x"])
def test_heuristic_is_cl100k_plus_margin_deterministic_and_positive(model):
    for text in SAMPLES[1:]:
        first = count_text(text, model)
        assert first > 0
        assert first == count_text(text, model)  # deterministic
        assert first == approx(cl100k(text))
        assert first >= cl100k(text)


def test_heuristic_not_fooled_by_cjk_or_code():
    # A chars/4 rule would say ~3 tokens here; the real count is far higher.
    text = "日本語のテキストです" * 10
    assert count_text(text, "llama3") >= len(text) // 2


def test_fallback_when_tokenizer_cannot_load(monkeypatch, fresh_cache, caplog):
    def broken(name):
        raise ImportError("bpe_openai missing")

    monkeypatch.setattr(tokens, "_load_codec", broken)
    with caplog.at_level(logging.WARNING, logger="agents.tokens"):
        assert count_text("abcdef", "gpt-4o") == 2  # 6 bytes / 3
        assert count_text("abcdefg", "llama3") == 3  # ceil(7/3), no extra margin
        assert count_text("日本", "gpt-4") == 2  # 6 utf-8 bytes
        assert count_text("", "gpt-4") == 0
        cut = truncate_to_tokens("word " * 1000, "gpt-4o", 50)
    assert count_text(cut, "gpt-4o") <= 50
    assert "output truncated" in cut
    # One warning per encoding, not one per call.
    warnings = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(warnings) == 2
    tokens.clear_encoding_cache()
    monkeypatch.undo()
    assert count_text("abcdef", "gpt-4o") == 1  # real tokenizer again


# ---------------------------------------------------------------------------
# Messages and tools
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4", "llama3.1"])
def test_plain_message(model):
    msg = {"role": "user", "content": "What is the weather in Paris?"}
    expected = TOKENS_PER_MESSAGE + count_text("user", model) + count_text(msg["content"], model)
    assert count_message(msg, model) == expected


def test_known_openai_message_count():
    # OpenAI's recipe on o200k: 3 (framing) + 1 ("user") + 2 ("hello world").
    assert count_message({"role": "user", "content": "hello world"}, "gpt-4o") == 6
    assert count_messages([{"role": "user", "content": "hello world"}], "gpt-4o") == 9


def test_none_content_and_name():
    m = "gpt-4o"
    assert count_message({"role": "assistant", "content": None}, m) == 3 + count_text("assistant", m)
    named = {"role": "user", "name": "alice", "content": "hi"}
    assert count_message(named, m) == (
        3 + count_text("user", m) + count_text("hi", m) + count_text("alice", m) + TOKENS_PER_NAME
    )


def test_list_content_text_and_images():
    m = "gpt-4o"
    msg = {
        "role": "user",
        "content": [
            {"type": "text", "text": "Describe this picture."},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 100000}},
            {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}},
            {"type": "text", "text": "And this one."},
        ],
    }
    expected = (
        3
        + count_text("user", m)
        + count_text("Describe this picture.", m)
        + count_text("And this one.", m)
        + IMAGE_TOKENS
        + IMAGE_TOKENS_LOW_DETAIL
    )
    assert count_message(msg, m) == expected  # base64 payload not counted as text


def test_unknown_block_counts_its_json():
    m = "gpt-4o"
    block = {"type": "refusal", "refusal": "I can't help with that."}
    msg = {"role": "assistant", "content": [block]}
    assert count_message(msg, m) == 3 + count_text("assistant", m) + count_text(
        json.dumps(block, separators=(",", ":")), m
    )


def test_tool_calls_and_tool_result():
    m = "gpt-4o"
    args = json.dumps({"path": "/etc/hosts", "max_lines": 20})
    assistant = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_abc", "type": "function", "function": {"name": "read_file", "arguments": args}},
            {"id": "call_def", "type": "function", "function": {"name": "list_dir", "arguments": "{}"}},
        ],
    }
    expected = (
        3
        + count_text("assistant", m)
        + 2 * TOKENS_PER_TOOL_CALL
        + count_text("read_file", m)
        + count_text(args, m)
        + count_text("list_dir", m)
        + count_text("{}", m)
    )
    assert count_message(assistant, m) == expected

    tool = {"role": "tool", "tool_call_id": "call_abc", "content": "127.0.0.1 localhost"}
    assert count_message(tool, m) == (
        3 + count_text("tool", m) + count_text("call_abc", m) + count_text(tool["content"], m)
    )


def test_tool_call_arguments_as_dict_are_counted_as_compact_json():
    m = "gpt-4o"
    as_str = {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": '{"a":1}'}}]}
    as_dict = {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]}
    assert count_message(as_dict, m) == count_message(as_str, m)


def test_count_messages_is_sum_plus_priming():
    m = "llama3.1:8b"
    history = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "x", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "1", "content": "done"},
    ]
    assert count_messages(history, m) == sum(count_message(x, m) for x in history) + REPLY_PRIMING_TOKENS
    assert count_messages([], m) == REPLY_PRIMING_TOKENS


def test_count_tools():
    m = "gpt-4o"
    tools = [
        {
            "type": "function",
            "function": {
                "name": "read_file",
                "description": "Lit un fichier — renvoie son contenu",
                "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
            },
        }
    ]
    compact = json.dumps(tools, separators=(",", ":"), ensure_ascii=False)
    assert count_tools(tools, m) == count_text(compact, m)
    # Non-ASCII is counted as the characters, not as \uXXXX escapes.
    assert count_tools(tools, m) < count_text(json.dumps(tools, separators=(",", ":")), m)
    assert count_tools([], m) == 0
    assert count_tools(None, m) == 0


# ---------------------------------------------------------------------------
# Context-window registry
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model,expected",
    [
        # exact names
        ("gpt-3.5-turbo", 16385),
        ("gpt-4", 8192),
        ("gpt-4-32k", 32768),
        ("gpt-4-turbo", 128000),
        ("gpt-4o", 128000),
        ("gpt-4o-mini", 128000),
        ("gpt-4.1", 1047576),
        ("gpt-5", 400000),
        ("o1", 200000),
        ("o3", 200000),
        ("o4-mini", 200000),
        ("llama2", 4096),
        ("llama3", 8192),
        ("llama3.1", 131072),
        ("llama3.2", 131072),
        ("llama3.3", 131072),
        ("qwen2", 32768),
        ("qwen2.5", 32768),
        ("qwen3", 40960),
        ("mistral", 32768),
        ("mistral-nemo", 128000),
        ("mixtral", 32768),
        ("gemma2", 8192),
        ("phi3", 4096),
        # dated / suffixed variants: longest prefix wins
        ("gpt-4o-mini-2024-07-18", 128000),
        ("gpt-4o-2024-08-06", 128000),
        ("gpt-4-0613", 8192),
        ("gpt-4-32k-0613", 32768),
        ("gpt-4-turbo-2024-04-09", 128000),
        ("gpt-4-1106-preview", 128000),
        ("gpt-3.5-turbo-0125", 16385),
        ("gpt-4.1-mini-2025-04-14", 1047576),
        ("gpt-4.1-nano", 1047576),
        ("gpt-5-nano", 400000),
        ("gpt-5-chat-latest", 128000),
        ("o1-mini", 128000),
        ("o1-2024-12-17", 200000),
        ("o3-mini-2025-01-31", 200000),
        ("claude-3-haiku-20240307", 200000),
        ("claude-3-5-sonnet-20241022", 200000),
        ("claude-3-7-sonnet-latest", 200000),
        ("claude-sonnet-4-20250514", 200000),
        ("claude-opus-4-1", 200000),
        ("claude-haiku-4-5", 200000),
        ("mixtral-8x22b-instruct", 65536),
        # ollama tags
        ("llama3.1:8b", 131072),
        ("llama3.1:70b-instruct-q4_K_M", 131072),
        ("llama3:latest", 8192),
        ("llama2:13b", 4096),
        ("qwen2.5-coder:7b", 32768),
        ("qwen3:8b", 40960),
        ("gemma3:27b", 131072),
        ("gemma3:1b", 32768),
        ("phi3:mini", 4096),
        ("phi3:medium-128k", 131072),
        ("mistral-nemo:12b", 128000),
        ("gpt-oss:20b", 131072),
        # provider prefixes and other spellings
        ("openai/gpt-4o", 128000),
        ("anthropic/claude-3.5-sonnet", 200000),
        ("openrouter/anthropic/claude-3-opus", 200000),
        ("ollama/llama3.2:3b", 131072),
        ("meta-llama/Llama-3.1-8B-Instruct", 131072),
        ("meta-llama/Meta-Llama-3-8B-Instruct", 8192),
        ("microsoft/Phi-3-mini-128k-instruct", 131072),
        ("google/gemma-2-9b-it", 8192),
        ("Qwen/Qwen2.5-7B-Instruct", 32768),
        ("anthropic.claude-3-5-sonnet-20240620-v1:0", 200000),
        ("us.anthropic.claude-3-7-sonnet-20250219-v1:0", 200000),
        ("claude-3-5-sonnet-v2@20241022", 200000),
        ("ft:gpt-4o-mini-2024-07-18:my-org::abc", 128000),
        ("  GPT-4O  ", 128000),
        # unknown -> default
        ("my-finetune", DEFAULT_CONTEXT_WINDOW),
        ("", DEFAULT_CONTEXT_WINDOW),
        ("qwen3x", DEFAULT_CONTEXT_WINDOW),  # word boundary: not qwen3
        ("llama", DEFAULT_CONTEXT_WINDOW),
    ],
)
def test_context_window_for(model, expected):
    assert context_window_for(model) == expected


def test_default_context_window_value():
    assert DEFAULT_CONTEXT_WINDOW == 8192
    assert context_window_for(None) == DEFAULT_CONTEXT_WINDOW


def test_override_wins_when_positive_int():
    assert context_window_for("gpt-4o", 4096) == 4096
    assert context_window_for("unknown-model", 32000) == 32000
    assert context_window_for("llama3.1:8b", override=2048) == 2048
    for ignored in (None, 0, -1, True, False, 1.5, "4096"):
        assert context_window_for("gpt-4o", ignored) == 128000, ignored
        assert context_window_for("nope", ignored) == DEFAULT_CONTEXT_WINDOW, ignored


def test_registry_is_well_formed():
    for key, value in CONTEXT_WINDOWS.items():
        assert key == key.strip().lower() and "/" not in key and ":" not in key, key
        assert normalize_model(key) == key, key  # reachable by lookup
        assert isinstance(value, int) and value > 0, key
        assert context_window_for(key) == value, key


def test_registry_is_extensible(monkeypatch):
    monkeypatch.setitem(CONTEXT_WINDOWS, "my-local-model", 12345)
    assert context_window_for("ollama/my-local-model:7b") == 12345


@pytest.mark.parametrize(
    "model,family",
    [
        ("llama3.1:8b", "llama3.1"),
        ("openai/gpt-4o", "gpt-4o"),
        ("Meta-Llama-3.1-8B-Instruct", "llama3.1-8b-instruct"),
        ("anthropic.claude-3-haiku-20240307-v1:0", "claude-3-haiku-20240307-v1"),
        ("ft:gpt-3.5-turbo:org:x:1", "gpt-3.5-turbo"),
        ("", ""),
    ],
)
def test_normalize_model(model, family):
    assert normalize_model(model) == family


# ---------------------------------------------------------------------------
# Truncation
# ---------------------------------------------------------------------------


def long_text(n_lines: int = 3000) -> str:
    rng = random.Random(42)
    words = ["alpha", "beta", "γάμμα", "δέλτα", "日本語", "🙂", "{x: 1}", "0x1f", "path/to/file.py", "\t"]
    return "\n".join(" ".join(rng.choice(words) for _ in range(12)) for _ in range(n_lines))


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4", "llama3.1:8b", "claude-3-5-sonnet"])
@pytest.mark.parametrize("budget", [60, 500, 4000])
def test_truncate_fits_budget_including_note(model, budget):
    text = long_text()
    total = count_text(text, model)
    out = truncate_to_tokens(text, model, budget)
    assert count_text(out, model) <= budget
    assert count_text(out, model) >= budget - 10  # and does not waste the budget
    head, sep, note = out.rpartition("\n[... output truncated: ")
    assert sep and note.endswith(" tokens cut to fit the context window]")
    assert text.startswith(head)
    assert "\ufffd" not in out  # never splits a character
    cut = int(note.split(" ", 1)[0])
    assert cut == total - count_text(head, model)


def test_truncate_short_text_unchanged():
    assert truncate_to_tokens("hello world", "gpt-4o", 2) == "hello world"
    assert truncate_to_tokens("hello world", "gpt-4o", 100) == "hello world"
    assert truncate_to_tokens("", "gpt-4o", 0) == ""


def test_truncate_custom_note_and_placeholders():
    text = "word " * 1000
    out = truncate_to_tokens(text, "gpt-4o", 50, note=" [cut {cut} of {total}, kept {kept}] {json: true}")
    assert count_text(out, "gpt-4o") <= 50
    assert out.endswith("{json: true}")
    assert "[cut " in out and "{cut}" not in out
    plain = truncate_to_tokens(text, "gpt-4o", 50, note="…")
    assert plain.endswith("…") and count_text(plain, "gpt-4o") <= 50


def test_truncate_budget_smaller_than_note_hard_cuts():
    text = "word " * 1000
    out = truncate_to_tokens(text, "gpt-4o", 5)
    assert count_text(out, "gpt-4o") <= 5
    assert out and text.startswith(out)
    assert truncate_to_tokens(text, "gpt-4o", 0) == ""
    assert truncate_to_tokens(text, "gpt-4o", -3) == ""


def test_truncate_never_splits_multibyte_characters():
    text = "👩‍💻🚀日本語" * 500
    for budget in range(30, 60):
        out = truncate_to_tokens(text, "gpt-4o", budget, note="")
        assert text.startswith(out)
        # at most a 4-byte character's worth of byte tokens is given up
        assert budget - 3 <= count_text(out, "gpt-4o") <= budget


def test_truncate_huge_text_beyond_wrapper_limits():
    # bpe_openai's tiktoken-style wrapper refuses >1M chars / >200k tokens;
    # a runaway tool output is exactly that, so this must still work.
    text = "line of log output number 12345\n" * 40000  # 1.28M chars
    assert len(text) > 1_000_000
    assert count_text(text, "gpt-4o") > 200_000
    out = truncate_to_tokens(text, "gpt-4o", 1000)
    assert count_text(out, "gpt-4o") <= 1000


# ---------------------------------------------------------------------------
# Offline, thread safety, speed
# ---------------------------------------------------------------------------


def test_works_with_networking_disabled(monkeypatch, fresh_cache):
    attempts = []

    def no_network(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    with pytest.raises(OSError):
        socket.create_connection(("example.com", 80))
    attempts.clear()

    loads = []
    real_load = tokens._load_codec
    monkeypatch.setattr(tokens, "_load_codec", lambda name: loads.append(name) or real_load(name))

    assert count_text("hello world", "gpt-4o") == 2
    assert count_text("hello world", "gpt-4") == 2
    assert count_text("tiktoken is great!", "llama3") == approx(6)
    assert count_messages([{"role": "user", "content": "hello world"}], "gpt-4o") == 9
    assert count_text(truncate_to_tokens("a b " * 5000, "gpt-4o", 40), "gpt-4o") <= 40
    assert sorted(loads) == ["cl100k_base", "o200k_base"]  # really loaded afresh
    assert all(isinstance(c, tokens._BpeCodec) for c in tokens._codecs.values())
    assert attempts == []


def test_fresh_interpreter_without_network():
    # Stronger than the monkeypatch above: the very first import of
    # bpe_openai and first load of both vocabularies happen with sockets
    # unusable.
    code = f"""
import socket
def boom(*a, **k):
    raise OSError("network disabled")
socket.socket.connect = boom
socket.socket.connect_ex = boom
socket.create_connection = boom
socket.getaddrinfo = boom
import importlib.util
spec = importlib.util.spec_from_file_location("tokens_under_test", {str(TOKENS_PY)!r})
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
assert mod.count_text("hello world", "gpt-4o") == 2
assert mod.count_text("tiktoken is great!", "gpt-4") == 6
assert all(type(c).__name__ == "_BpeCodec" for c in mod._codecs.values()), mod._codecs
"""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)


def test_concurrent_first_use_loads_each_encoding_once(monkeypatch, fresh_cache):
    loads = []
    real_load = tokens._load_codec

    def slow_load(name):
        loads.append(name)
        time.sleep(0.05)  # widen the race window
        return real_load(name)

    monkeypatch.setattr(tokens, "_load_codec", slow_load)
    barrier = threading.Barrier(16)
    results, errors = [], []

    def worker(i):
        try:
            barrier.wait()
            model = "gpt-4o" if i % 2 else "gpt-4"
            results.append((model, count_text("tiktoken is great! " * 10, model)))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(loads) == ["cl100k_base", "o200k_base"]
    assert len(set(results)) == 2


def test_counting_speed_of_a_long_history(capsys):
    rng = random.Random(7)
    vocab = "the agent reads files runs tests and reports results with code like def f(x): return x * 2".split()
    history = []
    for i in range(100):
        role = ("user", "assistant", "tool")[i % 3]
        text = " ".join(rng.choice(vocab) for _ in range(420))
        msg = {"role": role, "content": text}
        if role == "tool":
            msg["tool_call_id"] = f"call_{i}"
        history.append(msg)
    per_message = count_messages(history, "gpt-4o") / len(history)
    assert 400 <= per_message <= 600  # ~500 tokens each, as specified

    lines = []
    for model in ("gpt-4o", "gpt-4", "llama3.1:8b"):
        count_messages(history, model)  # warm: encoding loaded
        runs = 20
        start = time.perf_counter()
        for _ in range(runs):
            total = count_messages(history, model)
        elapsed = (time.perf_counter() - start) / runs
        lines.append(
            f"count_messages({len(history)} msgs, {total} tokens, {model}): {elapsed * 1000:.2f} ms"
        )
    with capsys.disabled():
        print("\n" + "\n".join(lines))


def test_counting_loads_the_rust_tokenizer_without_the_packages_registry():
    """The package's __init__ decodes every vocabulary into Python dicts (~60 MB kept);
    the gateway loads only the extension, and only the encoding it counts with."""
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "import sys\n"
        "sys.path.insert(0, %r)\n"
        "def rss():\n"
        "    return int([l for l in open('/proc/self/status')"
        " if l.startswith('VmRSS')][0].split()[1]) // 1024\n"
        "from agents import tokens\n"
        "before = rss()\n"
        "assert tokens.count_text('hello world', 'gpt-4') == 2\n"
        "assert 'bpe_openai' not in sys.modules\n"
        "print(rss() - before)\n" % str(Path(__file__).resolve().parents[2]))
    grown = int(subprocess.run([sys.executable, "-c", script], capture_output=True,
                               text=True, check=True).stdout.strip())
    assert grown < 55, f"loading cl100k grew the process by {grown} MB"


def test_adding_a_model_is_one_line_of_the_data_file(tmp_path) -> None:
    from agents.tokens import _load_registry

    table = tmp_path / "models.toml"
    table.write_text(Path(tokens.__file__).with_name("models.toml").read_text()
                     + '"my-new-model" = { context_window = 54321 }\n')

    windows, encodings = _load_registry(table)

    assert windows["my-new-model"] == 54321
    assert windows["gpt-4o"] == 128000 and encodings["gpt-4o"] == "o200k_base"
