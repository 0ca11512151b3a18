"""Router features: a request and its conversation so far -> a sparse vector, computed locally.

Everything here is deterministic across processes and machines (CRC-32 hashing, never Python's
salted `hash`), needs no network and no downloaded model, and is cheap enough to run on every
request: the text is lower-cased once, encoded once and cut to a bounded number of tokens and
bytes, so a long prompt costs no more than a short essay.

The vector has three parts, each scaled so that one part cannot drown the others:
- named numeric features (length, question marks, digits, code and math markers, turn, earlier
  failures, ...) at fixed indices after the hashed buckets (`numeric_offset` onwards), each in
  [0, 1];
- categorical features (intent, channel, tools offered, operations the text asks for, turn
  bucket), hashed, value 1 each;
- text n-grams (words, adjacent word pairs, optionally byte n-grams), hashed, scaled by
  1/sqrt(count) per kind so that a long text does not outweigh the rest. (No sign bit: with
  65,536 buckets it changed nothing measurable and cost a tenth of a decision.)
"""

from __future__ import annotations

import math
import re
import zlib
from itertools import repeat
from typing import Final

import msgspec

# Bump when the extractor's output changes for the same input: a model trained on other
# features must not be loaded silently.
FEATURE_VERSION: Final = 3

# A message whose text the ledger holds only as a commitment (redacted evidence) starts so.
COMMITMENT_PREFIX: Final = "sha256:"

NUMERIC_FEATURES: Final[tuple[str, ...]] = (
    "log_characters",
    "log_words",
    "log_lines",
    "question_marks",
    "digit_share",
    "math_markers",
    "code_markers",
    "mean_word_length",
    "long_word_share",
    "has_text",
    "first_turn",
    "later_turn",
    "earlier_failures",
    "has_earlier_failures",
    "tools_offered",
    "operations_asked",
)
NUMERIC_COUNT: Final = len(NUMERIC_FEATURES)

# Words that name an operation the customer wants done, by the operation they ask for. A request
# that moves money or changes a booking is harder than a question, whatever its intent label.
OPERATION_WORDS: Final[dict[str, str]] = {
    "refund": "refund",
    "refunds": "refund",
    "reimburse": "refund",
    "cancel": "cancel",
    "cancellation": "cancel",
    "cancelled": "cancel",
    "canceled": "cancel",
    "book": "book",
    "booking": "book",
    "reserve": "book",
    "reservation": "book",
    "schedule": "book",
    "transfer": "transfer",
    "send": "transfer",
    "pay": "payment",
    "payment": "payment",
    "charge": "payment",
    "charged": "payment",
    "invoice": "payment",
    "change": "change",
    "update": "change",
    "modify": "change",
    "reschedule": "change",
    "upgrade": "change",
    "return": "return",
    "exchange": "return",
    "track": "track",
    "tracking": "track",
    "status": "track",
    "complaint": "complain",
    "complain": "complain",
    "broken": "complain",
    "damaged": "complain",
    "password": "account",
    "login": "account",
    "account": "account",
    "delete": "account",
    "close": "account",
}
_OPERATION_BYTES: Final[dict[bytes, str]] = {
    word.encode(): operation for word, operation in OPERATION_WORDS.items()
}

_WORD: Final = re.compile(rb"[a-z0-9]+")
# Counted with str.count, which is many times faster than one regular expression of them all.
MATH_MARKERS: Final[tuple[str, ...]] = (
    "=", "+", "^", "<", ">", "%", "$", "√", "∑", "∫", "π", "±", "×", "÷", "≤", "≥",
    "\\frac", "sqrt", "log", "mod ",
)  # fmt: skip
CODE_MARKERS: Final[tuple[str, ...]] = (
    "```", "def ", "return", "import ", "#include", "class ", "function", "=>", "==", "!=",
    "{", "}", ";", "()",
)  # fmt: skip
_DIGIT_CHARACTERS: Final = "0123456789"

# Seeds that give each kind of hashed feature its own hash function, so that the word "chat"
# and the channel "chat" land in different buckets.
_SEED_WORD: Final = 0x5EED0001
_SEED_BYTES: Final = 0x5EED0003
_SEED_CATEGORY: Final = 0x5EED0004


class FeatureConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How text becomes hashed features; saved inside every model so inference matches training.

    `hash_bits` sets the number of hashed buckets (2**hash_bits); `word_ngrams` is 1 (words) or
    2 (words and adjacent pairs); `byte_ngrams` is 0 (none) or n (byte n-grams of the first
    `max_ngram_bytes` bytes of the normalised text); `max_tokens` caps the words hashed and
    `max_text_characters` the characters read at all: three quarters from the head, one quarter
    from the tail (lengths still count the whole text).
    """

    version: int = FEATURE_VERSION
    hash_bits: int = 16
    word_ngrams: int = 2
    byte_ngrams: int = 0
    max_tokens: int = 256
    max_ngram_bytes: int = 512
    max_text_characters: int = 1024

    def __post_init__(self) -> None:
        checks = (
            ("hash_bits", self.hash_bits, 8, 24),
            ("word_ngrams", self.word_ngrams, 1, 2),
            ("byte_ngrams", self.byte_ngrams, 0, 8),
            ("max_tokens", self.max_tokens, 1, 100_000),
            ("max_ngram_bytes", self.max_ngram_bytes, 1, 1_000_000),
            ("max_text_characters", self.max_text_characters, 1, 10_000_000),
        )
        for name, value, low, high in checks:
            if not low <= value <= high:
                raise ValueError(f"feature setting {name} must be in [{low}, {high}], got {value}")
        if self.version != FEATURE_VERSION:
            raise ValueError(
                f"features of version {self.version} cannot be computed by this raas "
                f"(it computes version {FEATURE_VERSION}); retrain the model"
            )

    @property
    def numeric_offset(self) -> int:
        """Where the named numeric features start: right after the hashed buckets."""
        return 1 << self.hash_bits

    @property
    def dimension(self) -> int:
        """The length of the feature vector: hashed buckets, then named numeric features."""
        return (1 << self.hash_bits) + NUMERIC_COUNT


class RouteRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What the router sees of one request: the customer's text and the conversation so far.

    `text` is the latest customer message (or the prompt); `turn` counts customer messages in
    the episode, this one included; `earlier_failures` counts answers in this episode that
    failed (an escalation, a customer saying it did not help, an upstream error); `tools` are
    the tool names the agent offers the model with this request.
    """

    text: str = ""
    intent: str | None = None
    channel: str | None = None
    turn: int = 1
    earlier_failures: int = 0
    tools: tuple[str, ...] = ()


FeatureSummary = dict[str, str | int | list[str]]


class Features(msgspec.Struct, frozen=True, kw_only=True):
    """A sparse feature vector (parallel `indices` and `values`) and a summary a person can read.

    Indices may repeat (two n-grams in one bucket); the model sums them, as a dot product does.
    """

    indices: list[int]
    values: list[float]
    summary: FeatureSummary


def text_state(text: str) -> str:
    """How a message's text is available to the router: "plain", "committed" or "absent"."""
    if not text:
        return "absent"
    if text.startswith(COMMITMENT_PREFIX):
        return "committed"
    return "plain"


def extract(request: RouteRequest, config: FeatureConfig) -> Features:
    """The features of one request under `config`; the same input always gives the same output."""
    mask = (1 << config.hash_bits) - 1
    numeric = [0.0] * NUMERIC_COUNT

    state = text_state(request.text)
    full_text = request.text if state == "plain" else ""
    characters = len(full_text)
    # Only the head and the tail of a long text are read, so the cost of a decision stays
    # bounded; the opening says what a request is about, the end what it asks.
    limit = config.max_text_characters
    if characters > limit:
        tail = limit // 4
        text = f"{full_text[: limit - tail]}\n{full_text[characters - tail :]}"
    else:
        text = full_text
    lowered = text.lower()
    data = lowered.encode("utf-8", "surrogatepass")
    words = _WORD.findall(data)

    count = lowered.count
    digits = sum(map(count, _DIGIT_CHARACTERS))
    question_marks = count("?")
    math_markers = sum(map(count, MATH_MARKERS))
    code_markers = sum(map(count, CODE_MARKERS))
    known = _OPERATION_BYTES
    operations = sorted({known[word] for word in known.keys() & set(words)})

    if characters:
        numeric[0] = min(math.log1p(characters) / 9.0, 1.0)
        numeric[1] = min(math.log1p(len(words)) / 7.0, 1.0)
        numeric[2] = min(math.log1p(text.count("\n") + 1) / 4.0, 1.0)
        numeric[3] = min(question_marks, 5) / 5.0
        numeric[4] = digits / len(text)
        numeric[5] = min(math_markers, 10) / 10.0
        numeric[6] = min(code_markers, 10) / 10.0
        if words:
            lengths = list(map(len, words))
            numeric[7] = min(sum(lengths) / len(words) / 10.0, 1.0)
            numeric[8] = sum(map((8).__lt__, lengths)) / len(words)  # words of 9+ letters
        numeric[9] = 1.0
    turn = max(request.turn, 1)
    failures = max(request.earlier_failures, 0)
    numeric[10] = 1.0 if turn == 1 else 0.0
    numeric[11] = min(turn - 1, 10) / 10.0
    numeric[12] = min(failures, 3) / 3.0
    numeric[13] = 1.0 if failures else 0.0
    numeric[14] = min(len(request.tools), 5) / 5.0
    numeric[15] = min(len(operations), 3) / 3.0

    offset = config.numeric_offset
    values = [value for value in numeric if value]
    indices = [offset + index for index, value in enumerate(numeric) if value]

    categories = [f"turn={min(turn, 4)}"]
    if request.intent:
        categories.append(f"intent={request.intent}")
    if request.channel:
        categories.append(f"channel={request.channel}")
    categories.extend(f"tool={tool}" for tool in request.tools)
    categories.extend(f"operation={operation}" for operation in operations)
    crc32 = zlib.crc32
    for category in categories:
        indices.append(crc32(category.encode("utf-8"), _SEED_CATEGORY) & mask)
        values.append(1.0)

    hashed_text = 0
    if words:
        kept = words[: config.max_tokens]
        hashes = _word_hashes(kept, config.word_ngrams)
        _append_hashed(indices, values, hashes, mask)
        hashed_text = len(hashes)
        size = config.byte_ngrams
        if size:
            head = b" ".join(kept)[: config.max_ngram_bytes]
            grams = [head[start : start + size] for start in range(len(head) - size + 1)]
            hashes = list(map(crc32, grams, repeat(_SEED_BYTES)))
            _append_hashed(indices, values, hashes, mask)
            hashed_text += len(hashes)

    summary: FeatureSummary = {
        "text": state,
        "characters": characters,
        "words": len(words),
        "question_marks": question_marks,
        "digits": digits,
        "math_markers": math_markers,
        "code_markers": code_markers,
        "operations": operations,
        "intent": request.intent or "",
        "channel": request.channel or "",
        "turn": turn,
        "earlier_failures": failures,
        "tools": list(request.tools),
        "hashed_text_features": hashed_text,
    }
    return Features(indices=indices, values=values, summary=summary)


def _word_hashes(tokens: list[bytes], word_ngrams: int) -> list[int]:
    # map() keeps the loops in C: most of a decision's time is spent here and in the model.
    crc32 = zlib.crc32
    hashes = list(map(crc32, tokens, repeat(_SEED_WORD)))
    if word_ngrams == 2:
        # A pair's hash continues the CRC of its first word: one call per pair, and "a b" and
        # "b a" hash differently. (map stops at the shorter input: one pair fewer than words.)
        hashes.extend(list(map(crc32, tokens[1:], hashes)))
    return hashes


def _append_hashed(indices: list[int], values: list[float], hashes: list[int], mask: int) -> None:
    if not hashes:
        return
    indices.extend(map(mask.__and__, hashes))
    values.extend([1.0 / math.sqrt(len(hashes))] * len(hashes))
