"""The CLIP BPE tokenizer, built offline from the vocabulary file that the `open-clip-torch` package ships.

The package is installed without its dependencies and never imported (its import pulls torchvision); only its
data file is read. The vocabulary is rebuilt the way CLIP defines it: the 256 byte symbols, the same with the
end-of-word marker, one entry per merge, then the two special tokens.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from diffusion import offline

BOS = 49406
EOS = 49407
MAX_LENGTH = 77
VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
MERGE_COUNT = 49152 - 256 - 2


def vocabulary_path() -> Path:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the CLIP vocabulary is missing: install open-clip-torch (pip install --no-deps)")
    return Path(next(iter(spec.submodule_search_locations))) / VOCAB_FILE


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible byte -> printable character table (as in GPT-2's byte-level BPE)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))


@dataclass(frozen=True)
class ClipVocabulary:
    vocab: dict[str, int]
    merges: list[tuple[str, str]]


@cache
def clip_vocabulary(path: Path | None = None) -> ClipVocabulary:
    with gzip.open(path or vocabulary_path(), "rt", encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : MERGE_COUNT + 1]]
    symbols = list(_bytes_to_unicode().values())
    tokens = [*symbols, *(s + "</w>" for s in symbols), *("".join(m) for m in merges)]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return ClipVocabulary({t: i for i, t in enumerate(tokens)}, [(a, b) for a, b in merges])


def folder_vocabulary(folder: Path) -> ClipVocabulary:
    """The vocabulary of a tokenizer folder as the hub stores it (`vocab.json`, `merges.txt`); its start and end
    tokens must have CLIP's ids, which the prompt layer writes."""
    from diffusion.checkpoint import CheckpointError

    vocab_file, merges_file = folder / "vocab.json", folder / "merges.txt"
    if not vocab_file.is_file() or not merges_file.is_file():
        raise CheckpointError(f"{folder.name}/: the CLIP tokenizer is missing (vocab.json and merges.txt) in {folder}")
    try:
        vocab = json.loads(vocab_file.read_text(encoding="utf-8"))
        lines = merges_file.read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{folder.name}/: not a readable CLIP tokenizer ({exc})") from exc
    merges = [tuple(line.split()) for line in lines if line and not line.startswith("#version")]
    if not isinstance(vocab, dict) or any(len(m) != 2 for m in merges):
        raise CheckpointError(f"{folder.name}/: vocab.json or merges.txt is not a CLIP BPE vocabulary")
    if vocab.get("<|startoftext|>") != BOS or vocab.get("<|endoftext|>") != EOS:
        raise CheckpointError(f"{folder.name}/: the start/end tokens are not CLIP's ({BOS}, {EOS})")
    return ClipVocabulary(vocab, [(a, b) for a, b in merges])


class ClipTokenizer:
    """Text -> CLIP token ids without the start/end tokens (the prompt layer adds those per 77-token window);
    the bundled vocabulary, or a pipeline folder's `tokenizer/` (`folder_vocabulary`)."""

    def __init__(self, vocab: ClipVocabulary | None = None) -> None:
        transformers = offline.transformers()
        vocab = vocab or clip_vocabulary()
        self._tok = transformers.CLIPTokenizer(vocab=vocab.vocab, merges=vocab.merges, model_max_length=MAX_LENGTH)
        if len(self._tok.get_vocab()) < EOS + 1:
            raise RuntimeError("the CLIP tokenizer came up with an incomplete vocabulary")
        self.vocab = vocab.vocab

    def ids(self, text: str) -> list[int]:
        return list(self._tok(text, add_special_tokens=False)["input_ids"])

    def words(self, text: str) -> list[list[int]]:
        """Token ids grouped by whitespace-separated word, so long prompts can be split between words."""
        return [self.ids(w) for w in text.split()]

    def __call__(self, text: str) -> list[int]:
        """The full sequence with start and end tokens (no padding), as CLIP encodes one short prompt."""
        return [BOS, *self.ids(text), EOS]
