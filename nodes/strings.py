"""String nodes: concatenate, cut, measure, change case, trim, replace, compare and regular expressions; and
PreviewAny, which shows any value as text."""

from __future__ import annotations

import json
import re
from typing import Any

from engine.native import Boolean, Combo, Int, Out, Socket, String, node

CATEGORY = "utils/string"


def _text() -> Any:
    return String(multiline=True)


@node(category=CATEGORY, outputs=["STRING"], display_name="Concatenate")
def StringConcatenate(string_a: str = _text(), string_b: str = _text(), delimiter: str = String("")) -> str:
    return delimiter.join((string_a, string_b))


@node(category=CATEGORY, outputs=["STRING"], display_name="Substring")
def StringSubstring(string: str = _text(), start: int = Int(None), end: int = Int(None)) -> str:
    """string[start:end] as Python slices it (negative counts from the end)."""
    return string[start:end]


@node(category=CATEGORY, outputs=[Out("INT", "length")], display_name="Length")
def StringLength(string: str = _text()) -> int:
    return len(string)


CASES = ("UPPERCASE", "lowercase", "Capitalize", "Title Case")


@node(category=CATEGORY, outputs=["STRING"], display_name="Case Converter")
def CaseConverter(string: str = _text(), mode: str = Combo(CASES)) -> str:
    convert = {"UPPERCASE": str.upper, "lowercase": str.lower, "Capitalize": str.capitalize, "Title Case": str.title}
    if mode not in convert:
        raise ValueError(f"mode: unknown {mode!r}; expected one of {CASES}")
    return convert[mode](string)


@node(category=CATEGORY, outputs=["STRING"], display_name="Trim")
def StringTrim(string: str = _text(), mode: str = Combo(("Both", "Left", "Right"))) -> str:
    trim = {"Both": str.strip, "Left": str.lstrip, "Right": str.rstrip}
    if mode not in trim:
        raise ValueError(f"mode: unknown {mode!r}; expected Both, Left or Right")
    return trim[mode](string)


@node(category=CATEGORY, outputs=["STRING"], display_name="Replace")
def StringReplace(string: str = _text(), find: str = _text(), replace: str = _text()) -> str:
    return string.replace(find, replace)


@node(category=CATEGORY, outputs=[Out("BOOLEAN", "contains")], display_name="Contains")
def StringContains(string: str = _text(), substring: str = _text(), case_sensitive: bool = Boolean(True)) -> bool:
    if case_sensitive:
        return substring in string
    return substring.casefold() in string.casefold()


@node(category=CATEGORY, outputs=["BOOLEAN"], display_name="Compare")
def StringCompare(
    string_a: str = _text(),
    string_b: str = _text(),
    mode: str = Combo(("Starts With", "Ends With", "Equal")),
    case_sensitive: bool = Boolean(True),
) -> bool:
    a, b = (string_a, string_b) if case_sensitive else (string_a.casefold(), string_b.casefold())
    if mode == "Starts With":
        return a.startswith(b)
    if mode == "Ends With":
        return a.endswith(b)
    if mode == "Equal":
        return a == b
    raise ValueError(f"mode: unknown {mode!r}; expected Starts With, Ends With or Equal")


def _flags(case_insensitive: bool, multiline: bool, dotall: bool) -> int:
    return (
        (re.IGNORECASE if case_insensitive else 0) | (re.MULTILINE if multiline else 0) | (re.DOTALL if dotall else 0)
    )


def _compile(pattern: str, flags: int) -> re.Pattern[str]:
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise ValueError(f"regex_pattern: {pattern!r} is not a valid regular expression: {exc}") from exc


@node(category=CATEGORY, outputs=[Out("BOOLEAN", "matches")], display_name="Regex Match")
def RegexMatch(
    string: str = _text(),
    regex_pattern: str = _text(),
    case_insensitive: bool = Boolean(True),
    multiline: bool = Boolean(False),
    dotall: bool = Boolean(False),
) -> bool:
    """Whether the pattern matches anywhere in the string."""
    return _compile(regex_pattern, _flags(case_insensitive, multiline, dotall)).search(string) is not None


EXTRACT_MODES = ("First Match", "All Matches", "First Group", "All Groups")


@node(category=CATEGORY, outputs=["STRING"], display_name="Regex Extract")
def RegexExtract(
    string: str = _text(),
    regex_pattern: str = _text(),
    mode: str = Combo(EXTRACT_MODES),
    case_insensitive: bool = Boolean(True),
    multiline: bool = Boolean(False),
    dotall: bool = Boolean(False),
    group_index: int = Int(1, min=0, max=100),
) -> str:
    """The first match or group, or all of them one per line; empty when nothing matches."""
    pattern = _compile(regex_pattern, _flags(case_insensitive, multiline, dotall))
    if mode == "First Match":
        match = pattern.search(string)
        return match.group(0) if match else ""
    if mode == "All Matches":
        return "\n".join(m.group(0) for m in pattern.finditer(string))
    if mode == "First Group":
        match = pattern.search(string)
        return (match.group(group_index) or "") if match and pattern.groups >= group_index else ""
    if mode == "All Groups":
        if pattern.groups < group_index:
            return ""
        return "\n".join(m.group(group_index) or "" for m in pattern.finditer(string))
    raise ValueError(f"mode: unknown {mode!r}; expected one of {EXTRACT_MODES}")


@node(category=CATEGORY, outputs=["STRING"], display_name="Regex Replace")
def RegexReplace(
    string: str = _text(),
    regex_pattern: str = _text(),
    replace: str = _text(),
    case_insensitive: bool = Boolean(True, optional=True),
    multiline: bool = Boolean(False, optional=True),
    dotall: bool = Boolean(False, optional=True, tooltip="Let '.' match newlines too."),
    count: int = Int(0, min=0, max=100, optional=True, tooltip="At most this many replacements; 0 replaces all."),
) -> str:
    """Replace matches of the pattern; `replace` may name groups as \\1 or \\g<name>."""
    pattern = _compile(regex_pattern, _flags(case_insensitive, multiline, dotall))
    return pattern.sub(replace, string, count=count)


def as_text(value: Any) -> str:
    """A readable text form of any socket value: strings as they are, JSON for plain data, else str()."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    try:
        return json.dumps(value, indent=4)
    except (TypeError, ValueError):
        return str(value)


@node(category="utils", outputs=[], output_node=True, display_name="Preview Any")
def PreviewAny(source: Any = Socket("*")) -> dict[str, Any]:
    """Show any value on the node as text."""
    return {"ui": {"text": [as_text(source)]}, "result": ()}
