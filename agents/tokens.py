"""Token counting and context-window bookkeeping for the agent gateway.

The gateway counts a whole chat history (OpenAI chat format) before every
model call to decide whether it still fits the model's context window, and
cuts oversized tool output down to a token budget.  This module is plain
Python on purpose (no Django / Channels / DRF) so it can be used from
consumers, workers and tests alike.

How counts are made, in three tiers:

1. **Exact** - OpenAI models (see :func:`encoding_name_for`) are counted with
   their real encoding (``o200k_base`` or ``cl100k_base``) through
   ``bpe-openai``, a Rust BPE tokenizer whose vocabularies ship inside the
   wheel: no download, no network, ever.  ``tiktoken`` is deliberately not
   used because it fetches its vocabulary files at run time.
2. **Approximate** - every other model (Claude, Llama, Qwen, Mistral, Gemma,
   ...) is counted with ``cl100k_base`` plus a
   :data:`APPROXIMATION_MARGIN_PERCENT` safety margin, rounded up.  cl100k is
   a far better proxy than a characters-per-token rule: Llama 3's vocabulary
   is cl100k plus 28k extra tokens and Qwen's was built from cl100k, so for
   those it is close to exact; SentencePiece models with small vocabularies
   (Llama 2, Mistral 7B) and Claude produce *more* tokens than cl100k, which
   is what the margin absorbs.  A character rule is badly wrong on code,
   JSON and CJK text, which is exactly what agent histories are full of.
   The margin errs on the side of over-counting because an over-count only
   costs a little context, while an under-count gets the request rejected
   (hosted APIs) or silently clipped from the front (Ollama drops the oldest
   part of a prompt longer than ``num_ctx``, system prompt included).
3. **Fallback** - should the tokenizer itself fail to load (broken install),
   counting degrades to ``ceil(utf8_bytes / 3)`` with a logged warning
   rather than raising: the gateway must keep working.  Bytes rather than
   characters so that CJK text (3 bytes/char, ~1 token/char) is not
   under-counted; /3 rather than /4 so that code and JSON are not either.

All counts are deterministic and offline.  Encodings are loaded lazily on
first use (the first call costs ~0.6 s, see :func:`warm_up`) and cached per
process behind a lock; nothing derived from message *content* is cached.

Message overheads follow OpenAI's published counting recipe (3 tokens per
message, 1 per ``name``, 3 to prime the reply); for other models they are
the same documented approximation.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import tomllib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "APPROXIMATION_ENCODING",
    "APPROXIMATION_MARGIN_PERCENT",
    "CONTEXT_WINDOWS",
    "DEFAULT_CONTEXT_WINDOW",
    "DEFAULT_TRUNCATION_NOTE",
    "FALLBACK_BYTES_PER_TOKEN",
    "IMAGE_TOKENS",
    "IMAGE_TOKENS_LOW_DETAIL",
    "REPLY_PRIMING_TOKENS",
    "TOKENS_PER_MESSAGE",
    "TOKENS_PER_NAME",
    "TOKENS_PER_TOOL_CALL",
    "clear_encoding_cache",
    "context_window_for",
    "count_message",
    "count_messages",
    "count_text",
    "count_tools",
    "encoding_name_for",
    "normalize_model",
    "truncate_to_tokens",
    "warm_up",
]

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------

#: Context window assumed for a model that is neither configured (profile
#: ``context_window``) nor in :data:`CONTEXT_WINDOWS`.  8192 is the smallest
#: window of the mainstream chat models still in use (gpt-4, llama3, gemma2),
#: so guessing it rarely overflows a real model, yet it leaves an agent loop
#: usable room; a bigger guess risks hard overflow errors, a smaller one
#: trims history for nothing.  Local servers may run with *less* (Ollama's
#: default ``num_ctx`` is 2048-4096 whatever the model supports): set the
#: profile's context_window to the server's value in that case.
DEFAULT_CONTEXT_WINDOW: int = 8192

#: OpenAI: every message is wrapped as ``<|start|>{role}<|message|>{content}<|end|>``,
#: i.e. 3 tokens on top of the role and content.
TOKENS_PER_MESSAGE: int = 3
#: OpenAI: a ``name`` field costs one token beyond its own text.
TOKENS_PER_NAME: int = 1
#: OpenAI: every reply is primed with ``<|start|>assistant<|message|>``.
REPLY_PRIMING_TOKENS: int = 3
#: Per tool call wrapper (function-call framing, separators).  Not published
#: by OpenAI; 3 mirrors the per-message wrapper and is a slight over-count.
TOKENS_PER_TOOL_CALL: int = 3

#: Fixed cost of one image block.  The real cost depends on pixel size,
#: which we do not decode: 765 is OpenAI's high-detail cost of a 1024x1024
#: image (85 base + 4 tiles x 170), the typical case for screenshots;
#: Anthropic's (w*h/750) is of the same order for that size.
IMAGE_TOKENS: int = 765
#: OpenAI's flat cost of an image sent with ``"detail": "low"``.
IMAGE_TOKENS_LOW_DETAIL: int = 85

#: Encoding used to approximate models whose tokenizer we do not ship.
APPROXIMATION_ENCODING: str = "cl100k_base"
#: Safety margin added (rounded up) to approximate counts; see module doc.
APPROXIMATION_MARGIN_PERCENT: int = 10
#: Last-resort divisor when no tokenizer can be loaded at all.
FALLBACK_BYTES_PER_TOKEN: int = 3

#: Appended by :func:`truncate_to_tokens`.  Placeholders (plain text
#: replacement, so other braces are safe): ``{cut}`` tokens removed,
#: ``{total}`` tokens originally, ``{kept}`` tokens kept.
DEFAULT_TRUNCATION_NOTE: str = "\n[... output truncated: {cut} tokens cut to fit the context window]"

# ---------------------------------------------------------------------------
# Registries
# ---------------------------------------------------------------------------

def _load_registry(path: Path) -> tuple[dict[str, int], dict[str, str]]:
    """The model table (``agents/models.toml``, one line a model): windows and encodings,
    each keyed by normalised model-name prefix (see :func:`context_window_for`)."""
    with path.open("rb") as handle:
        table = tomllib.load(handle)
    windows = {prefix: int(entry["context_window"]) for prefix, entry in table.items()
               if "context_window" in entry}
    encodings = {prefix: str(entry["encoding"]) for prefix, entry in table.items()
                 if "encoding" in entry}
    return windows, encodings


#: Well-known context windows and OpenAI encodings by model-name prefix, loaded once from
#: ``models.toml`` beside this module; adding a model is a line there.
CONTEXT_WINDOWS, _OPENAI_ENCODINGS = _load_registry(Path(__file__).with_name("models.toml"))

# ---------------------------------------------------------------------------
# Model-name normalisation
# ---------------------------------------------------------------------------

# AWS Bedrock ids: "anthropic.claude-3-5-sonnet-...", "us.anthropic.claude-...".
_BEDROCK_VENDOR = re.compile(
    r"^(?:(?:us|eu|apac|global)\.)?(?:anthropic|meta|mistral|amazon|cohere|ai21|deepseek|openai)\."
)
# Hugging Face spells "Llama-3.1", "Meta-Llama-3", "Phi-3", "gemma-2" where
# Ollama (and our registry) say "llama3.1", "phi3", "gemma2".
_HF_FAMILY = re.compile(r"^(?:meta-)?(llama|phi|gemma|qwen)-(?=\d)")


@lru_cache(maxsize=1024)
def _split_model(model: str) -> tuple[str, str]:
    """Return ``(family, tag)`` for a raw model string (pure, hence cached).

    ``"openai/gpt-4o"`` -> ``("gpt-4o", "")``; ``"llama3.1:8b"`` ->
    ``("llama3.1", "8b")``; ``"ft:gpt-4o-mini-2024-07-18:org::id"`` ->
    ``("gpt-4o-mini-2024-07-18", "org::id")``.
    """
    name = model.strip().lower()
    if name.startswith("ft:"):  # OpenAI fine-tune: ft:<base>:<org>:<suffix>:<id>
        name = name[3:]
    name = name.rsplit("/", 1)[-1]  # provider / router / HF namespace prefixes
    name = _BEDROCK_VENDOR.sub("", name)
    name = name.split("@", 1)[0]  # Vertex AI version pins: claude-...@20240620
    family, _, tag = name.partition(":")  # Ollama tags, Bedrock ":0" versions
    family = _HF_FAMILY.sub(r"\1", family)
    return family, tag


def normalize_model(model: str) -> str:
    """Normalise a model id to the family name the registries are keyed by.

    Lowercases; strips provider / router / Hugging Face namespaces
    (``openai/``, ``openrouter/anthropic/``, ``meta-llama/``), AWS Bedrock
    vendor prefixes, Vertex ``@version`` pins, OpenAI ``ft:`` fine-tune
    wrappers and Ollama ``:tags``; folds HF spellings such as
    ``Meta-Llama-3.1-8B`` to ``llama3.1-8b``.
    """
    return _split_model(model or "")[0]


def _match_prefix(name: str, table: dict[str, Any]) -> str | None:
    """Longest key of *table* that is a prefix of *name* at a word boundary.

    The boundary (end of name, or a non-alphanumeric character next) keeps
    ``gpt-4`` from claiming ``gpt-4o`` or ``o1`` from claiming ``o1x``, while
    ``gpt-4o-mini-2024-07-18`` still finds ``gpt-4o-mini``.
    """
    best: str | None = None
    for key in table:
        if (
            name.startswith(key)
            and (len(name) == len(key) or not name[len(key)].isalnum())
            and (best is None or len(key) > len(best))
        ):
            best = key
    return best


def encoding_name_for(model: str) -> str | None:
    """Name of the OpenAI encoding *model* really uses, or ``None``.

    ``"o200k_base"`` for the gpt-4o / gpt-4.1 / gpt-4.5 / gpt-5 / o1 / o3 /
    o4 / gpt-oss families, ``"cl100k_base"`` for gpt-4 / gpt-3.5 /
    text-embedding-3 / ada-002, and ``None`` for anything else (which
    :func:`count_text` then approximates).
    """
    key = _match_prefix(normalize_model(model), _OPENAI_ENCODINGS)
    return _OPENAI_ENCODINGS[key] if key else None


def context_window_for(model: str, override: int | None = None) -> int:
    """Context window (tokens) to budget *model*'s requests against.

    1. *override* (the profile's ``context_window``) wins when it is a
       positive int - the only way to reflect what a server is actually
       configured for (e.g. Ollama's ``num_ctx``).
    2. Else :data:`CONTEXT_WINDOWS`, by longest word-boundary prefix of the
       normalised name (see :func:`normalize_model`).  An Ollama tag takes
       part in the match (``phi3:mini-128k`` is looked up as
       ``phi3-mini-128k``) so a size variant can have its own entry; a tag
       with no entry falls back to the family.
    3. Else :data:`DEFAULT_CONTEXT_WINDOW`.
    """
    if isinstance(override, int) and not isinstance(override, bool) and override > 0:
        return override
    family, tag = _split_model(model or "")
    name = f"{family}-{tag}" if tag else family
    key = _match_prefix(name, CONTEXT_WINDOWS)
    return CONTEXT_WINDOWS[key] if key else DEFAULT_CONTEXT_WINDOW


# ---------------------------------------------------------------------------
# Tokenizer access
# ---------------------------------------------------------------------------


class _Codec(Protocol):
    """What the counting code needs from a tokenizer."""

    def count(self, text: str) -> int: ...

    def units(self, text: str) -> Sequence[Any]:
        """Split *text* into the codec's cuttable units (token ids, chars)."""
        ...

    def prefix(self, units: Sequence[Any], n: int) -> str:
        """Text of the first *n* units (possibly a little less, never more)."""
        ...


def _scrub(text: str) -> str:
    # Lone surrogates (e.g. from badly decoded tool output) cannot cross
    # into Rust as UTF-8; replace them rather than fail the count.
    return text.encode("utf-8", "replace").decode("utf-8")


class _BpeCodec:
    """Adapter over one ``bpe-openai`` Rust tokenizer.

    Uses the package's ``_bindings`` tokenizer (typed by the package's own
    ``_bindings.pyi``) rather than the tiktoken-style ``Encoding`` wrapper:
    the wrapper refuses inputs over 1M characters or 200k tokens - exactly
    the oversized tool outputs we must count and cut - and materialises
    every token id as a Python list just to count them.  The tests check
    this path against the public ``Encoding`` API, so a change to the
    private module is caught there.
    """

    __slots__ = ("name", "_tokenizer")

    def __init__(self, name: str, tokenizer: Any) -> None:
        self.name = name
        self._tokenizer = tokenizer

    def count(self, text: str) -> int:
        try:
            return self._tokenizer.count(text)
        except UnicodeEncodeError:
            return self._tokenizer.count(_scrub(text))

    def units(self, text: str) -> Sequence[int]:
        try:
            return self._tokenizer.encode(text)
        except UnicodeEncodeError:
            return self._tokenizer.encode(_scrub(text))

    def prefix(self, units: Sequence[int], n: int) -> str:
        # A cut can split a multi-byte character across tokens, which the
        # Rust decoder rejects; drop trailing tokens (a UTF-8 character
        # spans at most 4 bytes, so at most 3 need to go).
        n = max(0, min(n, len(units)))
        for end in range(n, max(-1, n - 4), -1):
            try:
                return self._tokenizer.decode(list(units[:end]))
            except ValueError:
                continue
        return ""  # pragma: no cover - unreachable for ids of valid text

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"<_BpeCodec {self.name}>"


class _ByteEstimateCodec:
    """Last-resort estimate when no tokenizer loads: ceil(utf8 bytes / 3)."""

    name = "byte-estimate"

    def count(self, text: str) -> int:
        return -(-len(text.encode("utf-8", "replace")) // FALLBACK_BYTES_PER_TOKEN)

    def units(self, text: str) -> Sequence[str]:
        return text

    def prefix(self, units: Sequence[str], n: int) -> str:
        return "".join(units[: max(0, n)])


_FALLBACK_CODEC = _ByteEstimateCodec()
_codecs: dict[str, _Codec] = {}
_codecs_lock = threading.Lock()


def _bindings_module() -> Any:
    """bpe_openai's Rust extension, loaded without running the package's ``__init__``.

    The package's import builds a registry that decodes every vocabulary it ships into
    Python dicts (about 0.5 s and 60 MB kept by the process), none of which the Rust
    tokenizer needs: it carries its own data. Loading the extension alone costs ~1 MB,
    plus ~30 MB for cl100k when first used. Falls back to the normal import.
    """
    import importlib.machinery
    import importlib.util

    try:
        spec = importlib.util.find_spec("bpe_openai")
        folder = Path(next(iter(spec.submodule_search_locations)))  # type: ignore[union-attr]
        path = next(folder.glob("_bindings*.so"))
        loader = importlib.machinery.ExtensionFileLoader("bpe_openai._bindings", str(path))
        ext_spec = importlib.util.spec_from_file_location("bpe_openai._bindings", path,
                                                          loader=loader)
        module = importlib.util.module_from_spec(ext_spec)  # type: ignore[arg-type]
        loader.exec_module(module)
        return module
    except (ImportError, StopIteration, AttributeError, TypeError, OSError):
        from bpe_openai import _bindings

        return _bindings


def _load_codec(encoding_name: str) -> _Codec:
    """Build the tokenizer for *encoding_name* from the data in the wheel."""
    # Loaded here, not at module load: processes that never count should not pay.
    return _BpeCodec(encoding_name,
                     _bindings_module().tokenizer_for_encoding(encoding_name))


def _get_codec(encoding_name: str) -> _Codec:
    codec = _codecs.get(encoding_name)  # lock-free fast path
    if codec is not None:
        return codec
    with _codecs_lock:
        codec = _codecs.get(encoding_name)  # another thread may have won
        if codec is None:
            try:
                codec = _load_codec(encoding_name)
            except Exception:
                # Cached too, so a broken install costs one warning, not one
                # failed import per count.
                logger.warning(
                    "tokenizer %s unavailable; token counts fall back to utf8 bytes/%d",
                    encoding_name,
                    FALLBACK_BYTES_PER_TOKEN,
                    exc_info=True,
                )
                codec = _FALLBACK_CODEC
            _codecs[encoding_name] = codec
        return codec


def clear_encoding_cache() -> None:
    """Forget loaded tokenizers; the next count loads them afresh (tests)."""
    with _codecs_lock:
        _codecs.clear()


def warm_up() -> None:
    """Load both encodings now (e.g. at app start) instead of on first count."""
    for name in ("o200k_base", "cl100k_base"):
        _get_codec(name)


@lru_cache(maxsize=1024)
def _resolve(model: str) -> tuple[str, bool]:
    """``(encoding_name, approximate)`` for *model*; pure, hence cached."""
    name = encoding_name_for(model)
    return (name, False) if name else (APPROXIMATION_ENCODING, True)


class _Counter:
    """A codec plus whether counts get the approximation margin."""

    __slots__ = ("codec", "margin")

    def __init__(self, model: str) -> None:
        encoding, approximate = _resolve(model or "")
        self.codec = _get_codec(encoding)
        # The byte estimate is already conservative: no margin on top.
        self.margin = approximate and self.codec is not _FALLBACK_CODEC

    def scale(self, raw: int) -> int:
        if self.margin:
            return raw + -(-raw * APPROXIMATION_MARGIN_PERCENT // 100)
        return raw

    def text(self, text: Any) -> int:
        if not text:
            return 0
        if not isinstance(text, str):
            text = str(text)
        return self.scale(self.codec.count(text))


# ---------------------------------------------------------------------------
# Counting
# ---------------------------------------------------------------------------


def _compact_json(value: Any) -> str:
    # ensure_ascii=False: the model sees the characters, not \uXXXX escapes
    # (which would inflate non-English counts several times over).
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def count_text(text: str, model: str) -> int:
    """Number of tokens *text* costs for *model* (``""`` -> 0, never None).

    Exact for OpenAI models, cl100k + margin for the rest, bytes/3 if no
    tokenizer could be loaded; see the module docstring.
    """
    return _Counter(model).text(text)


def _content_tokens(content: Any, counter: _Counter) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return counter.text(content)
    if isinstance(content, list):
        total = 0
        for block in content:
            if isinstance(block, str):
                total += counter.text(block)
            elif not isinstance(block, dict):
                total += counter.text(_compact_json(block))
            elif block.get("type") in ("image_url", "image", "input_image"):
                image = block.get("image_url")
                detail = image.get("detail") if isinstance(image, dict) else block.get("detail")
                total += IMAGE_TOKENS_LOW_DETAIL if detail == "low" else IMAGE_TOKENS
            elif isinstance(block.get("text"), str):  # "text", "input_text", ...
                total += counter.text(block["text"])
            else:
                # Unknown block (audio, file, refusal...): its JSON is an
                # over-count, which is the safe direction.
                total += counter.text(_compact_json(block))
        return total
    return counter.text(_compact_json(content))


def _message_tokens(message: dict, counter: _Counter) -> int:
    total = TOKENS_PER_MESSAGE
    total += counter.text(message.get("role"))
    total += _content_tokens(message.get("content"), counter)
    name = message.get("name")
    if name:
        total += counter.text(name) + TOKENS_PER_NAME
    for call in message.get("tool_calls") or ():
        function = (call.get("function") if isinstance(call, dict) else None) or {}
        arguments = function.get("arguments")
        if arguments is not None and not isinstance(arguments, str):
            arguments = _compact_json(arguments)  # Ollama sends a dict
        total += TOKENS_PER_TOOL_CALL
        total += counter.text(function.get("name"))
        total += counter.text(arguments)
    total += counter.text(message.get("tool_call_id"))
    return total


def count_message(message: dict, model: str) -> int:
    """Tokens one chat message costs, framing included.

    Counts the role, the content (a string; or every text block of a list,
    each image block at :data:`IMAGE_TOKENS` / :data:`IMAGE_TOKENS_LOW_DETAIL`
    for ``detail: "low"``, other blocks as their JSON; ``None`` is 0), the
    ``name`` (+ :data:`TOKENS_PER_NAME`), each tool call's function name and
    arguments (+ :data:`TOKENS_PER_TOOL_CALL`), the ``tool_call_id``, plus
    :data:`TOKENS_PER_MESSAGE`.  Tool-call ids of an assistant message are
    not counted: chat templates generally do not render them.
    """
    return _message_tokens(message, _Counter(model))


def count_messages(messages: list[dict], model: str) -> int:
    """Tokens a whole history costs: sum of :func:`count_message` plus
    :data:`REPLY_PRIMING_TOKENS` (so an empty list costs 3)."""
    counter = _Counter(model)  # resolve the model once, not per message
    return sum(_message_tokens(m, counter) for m in messages) + REPLY_PRIMING_TOKENS


def count_tools(tools: list[dict], model: str) -> int:
    """Approximate tokens of the tool schemas sent with a request.

    Counts the compact JSON of *tools*.  Providers re-render schemas in
    their own format (OpenAI: a TypeScript-like namespace) whose exact cost
    is unpublished; compact JSON is of the same order, usually a little
    more.  No tools -> 0.
    """
    if not tools:
        return 0
    return count_text(_compact_json(tools), model)


# ---------------------------------------------------------------------------
# Truncation
# ---------------------------------------------------------------------------


def _render_note(note: str, *, cut: int, total: int, kept: int) -> str:
    # Plain replacement rather than str.format so notes may contain braces.
    return (
        note.replace("{cut}", str(cut)).replace("{total}", str(total)).replace("{kept}", str(kept))
    )


def truncate_to_tokens(
    text: str, model: str, max_tokens: int, note: str = DEFAULT_TRUNCATION_NOTE
) -> str:
    """Cut *text* to at most *max_tokens* tokens for *model*, note included.

    Returns *text* unchanged when it already fits.  Otherwise keeps the head
    of the text and appends *note* (placeholders ``{cut}``, ``{total}``,
    ``{kept}`` are filled in), so that ``count_text(result, model) <=
    max_tokens`` holds.  The cut falls on a token boundary and never splits a
    character.  If the budget cannot hold the note at all the text is
    hard-cut without it; ``max_tokens <= 0`` gives ``""``.
    """
    if not text:
        return text
    # No tokenizer needed when the text is short: a token is at least one UTF-8 byte
    # (the approximation for other models adds its margin on top).
    margin = 1 + APPROXIMATION_MARGIN_PERCENT / 100
    if len(text.encode("utf-8", "surrogatepass")) * margin + 1 <= max_tokens:
        return text
    counter = _Counter(model)
    total = counter.text(text)
    if total <= max_tokens:
        return text
    if max_tokens <= 0:
        return ""

    # Reserve room for the note as rendered with the widest numbers it can
    # show; if even that does not fit, cut without a note.
    note_tokens = counter.text(_render_note(note, cut=total, total=total, kept=total))
    if note_tokens >= max_tokens:
        note, note_tokens = "", 0

    units = counter.codec.units(text)
    n_units = len(units)
    # Units (token ids, or chars for the byte estimate) map to counted
    # tokens roughly proportionally; start there, then shrink on overshoot.
    keep = n_units * (max_tokens - note_tokens) // total
    while True:
        head = counter.codec.prefix(units, keep)
        kept = counter.text(head)
        result = head + _render_note(note, cut=total - kept, total=total, kept=kept)
        over = counter.text(result) - max_tokens
        if over <= 0:
            return result
        if keep <= 0:  # only reachable when the note alone overflows
            return ""  # pragma: no cover - excluded by the note check above
        # BPE merges across the join can make this a token or two off;
        # each round shrinks by at least one unit, so it terminates.
        keep = max(0, keep - max(1, -(-over * n_units // total)))
