"""The rules that find the file a workflow means when its model name is not one of the files here.

In order: the exact name; the same name with `\\` and `/` treated alike; the same file name in another subfolder
(a unique match only); the name plus one of the folder's extensions; a sha256 or AutoV2 hash the workflow gave for
that name, matching an indexed file. Names are never matched by similarity alone: two different candidates are an
error that lists them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from engine.folders import MODEL_EXTENSIONS

RULES = ("separators", "subfolder", "extension", "hash")


@dataclass(frozen=True, slots=True)
class Resolved:
    """`original` names the file `name`, found by `rule`."""

    original: str
    name: str
    rule: str

    def describe(self) -> str:
        return f"{self.original} -> {self.name} (by {self.rule})"


class AmbiguousModelName(ValueError):
    """Several different files could be the one a workflow names; the user picks."""

    def __init__(self, original: str, candidates: Sequence[str], rule: str) -> None:
        self.original = original
        self.candidates = list(candidates)
        self.rule = rule
        listed = ", ".join(repr(c) for c in self.candidates)
        super().__init__(f"{original!r} could be any of {listed} (same {rule}); pick one")


def _posix(name: str) -> str:
    return name.replace("\\", "/").strip("/")


def _unique(candidates: list[str]) -> list[str]:
    return sorted(dict.fromkeys(candidates))


def _by_separators(value: str, choices: Sequence[str]) -> list[str]:
    wanted = _posix(value)
    exact = [c for c in choices if _posix(c) == wanted]
    return exact or [c for c in choices if _posix(c).casefold() == wanted.casefold()]


def _by_subfolder(value: str, choices: Sequence[str]) -> list[str]:
    base = PurePosixPath(_posix(value)).name
    exact = [c for c in choices if PurePosixPath(_posix(c)).name == base]
    return exact or [c for c in choices if PurePosixPath(_posix(c)).name.casefold() == base.casefold()]


def _by_extension(value: str, choices: Sequence[str]) -> list[str]:
    wanted = PurePosixPath(_posix(value))
    if wanted.suffix.lower() in MODEL_EXTENSIONS:
        return []
    found = []
    for choice in choices:
        path = PurePosixPath(_posix(choice))
        if path.suffix.lower() not in MODEL_EXTENSIONS:
            continue
        stem = path.with_suffix("")
        if stem == wanted or (len(wanted.parts) == 1 and stem.name == wanted.name):
            found.append(choice)
    return found


FINDERS = (("separators", _by_separators), ("subfolder", _by_subfolder), ("extension", _by_extension))

HashLookup = Callable[[str], Sequence[str]]
"""Names (in the folder at hand) of indexed files whose sha256 is, or starts with, the given digest."""


def resolve_model_name(
    value: str,
    choices: Sequence[str],
    *,
    hashes: Mapping[str, str] | None = None,
    by_hash: HashLookup | None = None,
) -> Resolved | None:
    """The file among `choices` that `value` means, None when nothing matches (the caller reports it missing).

    `hashes` maps names as the workflow wrote them to the hash it recorded for them; `by_hash` asks the index.
    Raises AmbiguousModelName when a rule finds several files and no later rule singles one out.
    """
    if value in choices:
        return Resolved(value, value, "exact")
    ambiguous: AmbiguousModelName | None = None
    for rule, finder in FINDERS:
        found = _unique(finder(value, choices))
        if len(found) == 1:
            return Resolved(value, found[0], rule)
        if found and ambiguous is None:
            ambiguous = AmbiguousModelName(value, found, {"subfolder": "file name"}.get(rule, rule))
    digest = _hint_for(value, hashes or {})
    if digest and by_hash is not None:
        allowed = set(choices)
        found = [name for name in by_hash(digest) if name in allowed]
        if found:
            # Files with one hash are copies of one file: any of them is the file meant.
            return Resolved(value, sorted(found)[0], "hash")
    if ambiguous is not None:
        raise ambiguous
    return None


def _hint_for(value: str, hashes: Mapping[str, str]) -> str | None:
    if value in hashes:
        return hashes[value]
    wanted = _posix(value)
    for name, digest in hashes.items():
        if _posix(name) == wanted:
            return digest
    return None


DEMO_PREFIX = "loom-demo-"


def proposals(
    value: str, choices: Sequence[str], *, digest: str | None = None, by_hash: HashLookup | None = None
) -> list[Resolved]:
    """Every file a person might pick for a missing `value`, best first: the file with the recorded hash, then files
    matched by name (each rule's candidates, ambiguous ones included), then Loom's demo stand-in for the folder."""
    found: dict[str, Resolved] = {}
    if digest and by_hash is not None:
        allowed = set(choices)
        for name in sorted(n for n in by_hash(digest) if n in allowed):
            found.setdefault(name, Resolved(value, name, "hash"))
    for rule, finder in FINDERS:
        for name in _unique(finder(value, choices)):
            found.setdefault(name, Resolved(value, name, rule))
    for name in choices:
        if PurePosixPath(_posix(name)).name.startswith(DEMO_PREFIX):
            found.setdefault(name, Resolved(value, name, "demo"))
    return list(found.values())
