"""Prompt syntax: emphasis weights, escapes, textual-inversion references, and 77-token windows.

`(word)` multiplies the weight by 1.1, `[word]` divides it by 1.1, `(word:1.3)` sets a factor of 1.3; groups nest
and multiply. `\\(` and `\\)` (and brackets) are literal. `embedding:NAME` inserts the vectors of a textual
inversion file, `embedding:NAME:1.2` weights them too. Long prompts are cut into windows of 75 tokens (between words
where possible), each wrapped in start/end tokens and padded to 77; the encoder output of the windows is concatenated.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from diffusion.tokenizer import BOS, EOS, MAX_LENGTH

WINDOW = MAX_LENGTH - 2
_WEIGHT = re.compile(r"^(.*):\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*$", re.DOTALL)
# `embedding:NAME` or `embedding:NAME:1.2` (the weight multiplies the vectors' emphasis); the name stops at a colon.
_EMBEDDING = re.compile(r"embedding:([^\s,()\[\]:]+)(?::([+-]?(?:\d+\.?\d*|\.\d+)))?")


@dataclass(frozen=True)
class Segment:
    text: str
    weight: float


def parse_weights(text: str) -> list[Segment]:
    """Split a prompt into runs of text with their emphasis weight; adjacent runs of equal weight merge."""
    out: list[Segment] = []
    _parse(text, 1.0, out)
    merged: list[Segment] = []
    for seg in out:
        if merged and merged[-1].weight == seg.weight:
            merged[-1] = Segment(merged[-1].text + seg.text, seg.weight)
        elif seg.text:
            merged.append(seg)
    return merged


def _matching(text: str, start: int, open_ch: str, close_ch: str) -> int:
    """Index of the bracket closing the one at `start`, honouring escapes and nesting; -1 when unclosed."""
    depth = 0
    i = start
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == open_ch:
            depth += 1
        elif ch == close_ch:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _parse(text: str, weight: float, out: list[Segment]) -> None:
    buf: list[str] = []
    i = 0

    def flush() -> None:
        if buf:
            out.append(Segment("".join(buf), weight))
            buf.clear()

    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            buf.append(text[i + 1])
            i += 2
            continue
        if ch in "([":
            close = _matching(text, i, ch, ")" if ch == "(" else "]")
            if close < 0:
                buf.append(ch)
                i += 1
                continue
            flush()
            inner = text[i + 1 : close]
            if ch == "(":
                m = _WEIGHT.match(inner)
                inner, factor = (m.group(1), float(m.group(2))) if m else (inner, 1.1)
            else:
                factor = 1 / 1.1
            _parse(inner, weight * factor, out)
            i = close + 1
            continue
        buf.append(ch)
        i += 1
    flush()


Token = int | Any  # an id, or one embedding vector (a tensor row) from a textual inversion
EmbeddingLookup = Callable[[str], Any | None]  # name -> [n, width] tensor for this encoder, or None


@dataclass
class Window:
    tokens: list[Token]
    weights: list[float]


def tokenize_prompt(
    text: str,
    words: Callable[[str], list[list[int]]],
    lookup: EmbeddingLookup,
    warn: Callable[[str], None],
    pad_token: int,
) -> list[Window]:
    """The prompt as 77-token windows of ids and embedding vectors, with a weight for each position."""
    groups: list[tuple[list[Token], float]] = []
    for seg in parse_weights(text):
        pos = 0
        for m in _EMBEDDING.finditer(seg.text):
            groups += [(w, seg.weight) for w in words(seg.text[pos : m.start()])]
            name = m.group(1).rstrip(".,;!?")
            vectors = lookup(name)
            if vectors is None:
                warn(f"embedding {name!r} not found in models/embeddings; the word is left out")
            else:
                factor = float(m.group(2)) if m.group(2) is not None else 1.0
                groups.append((list(vectors), seg.weight * factor))
            pos = m.end()
        groups += [(w, seg.weight) for w in words(seg.text[pos:])]
    windows: list[Window] = [Window([], [])]
    for tokens, weight in groups:
        if len(windows[-1].tokens) + len(tokens) > WINDOW and len(tokens) <= WINDOW and windows[-1].tokens:
            windows.append(Window([], []))
        for tok in tokens:
            if len(windows[-1].tokens) == WINDOW:
                windows.append(Window([], []))
            windows[-1].tokens.append(tok)
            windows[-1].weights.append(weight)
    for w in windows:
        pad = MAX_LENGTH - 2 - len(w.tokens)
        w.tokens = [BOS, *w.tokens, EOS, *([pad_token] * pad)]
        w.weights = [1.0, *w.weights, 1.0, *([1.0] * pad)]
    return windows
