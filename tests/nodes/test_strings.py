"""String nodes and PreviewAny."""

from __future__ import annotations

import pytest

from tests.nodes.conftest import Run


def test_basic_string_nodes(run: Run) -> None:
    assert run("StringConcatenate", string_a="a", string_b="b", delimiter=", ") == "a, b"
    assert run("StringSubstring", string="abcdef", start=1, end=-1) == "bcde"
    assert run("StringLength", string="héllo") == 5
    assert run("CaseConverter", string="hello world", mode="Title Case") == "Hello World"
    assert run("StringTrim", string="  x  ", mode="Left") == "x  "
    assert run("StringReplace", string="a-b-c", find="-", replace="+") == "a+b+c"
    assert run("StringContains", string="Hello", substring="hell", case_sensitive=False) is True
    assert run("StringContains", string="Hello", substring="hell", case_sensitive=True) is False
    assert run("StringCompare", string_a="Photo.PNG", string_b=".png", mode="Ends With", case_sensitive=False)
    assert not run("StringCompare", string_a="a", string_b="b", mode="Equal", case_sensitive=True)
    with pytest.raises(ValueError, match="mode"):
        run("CaseConverter", string="x", mode="sPoNgE")


def test_regex_nodes(run: Run) -> None:
    flags = {"case_insensitive": True, "multiline": False, "dotall": False}
    assert run("RegexMatch", string="Seed 42", regex_pattern=r"seed \d+", **flags) is True
    text = "w=512 h=768"
    assert run("RegexExtract", string=text, regex_pattern=r"\d+", mode="First Match", group_index=1, **flags) == "512"
    assert (
        run("RegexExtract", string=text, regex_pattern=r"\d+", mode="All Matches", group_index=1, **flags) == "512\n768"
    )
    assert (
        run("RegexExtract", string=text, regex_pattern=r"(\w)=(\d+)", mode="All Groups", group_index=2, **flags)
        == "512\n768"
    )
    assert run("RegexExtract", string=text, regex_pattern=r"(\w)=", mode="First Group", group_index=3, **flags) == ""
    assert run("RegexReplace", string="a1b22", regex_pattern=r"\d+", replace="#", count=1, **flags) == "a#b22"
    assert run("RegexReplace", string="a1b22", regex_pattern=r"(\d+)", replace=r"<\1>", **flags) == "a<1>b<22>"
    with pytest.raises(ValueError, match="regex_pattern"):
        run("RegexMatch", string="x", regex_pattern="(", **flags)


def test_regex_replace_optional_flags_default(run: Run) -> None:
    assert run("RegexReplace", string="ABC", regex_pattern="b", replace="x") == "AxC"


def test_preview_any_shows_text(run: Run) -> None:
    assert run("PreviewAny", source="hi") == {"ui": {"text": ["hi"]}, "result": ()}
    assert run("PreviewAny", source=3.5)["ui"]["text"] == ["3.5"]
    assert run("PreviewAny", source={"a": [1]})["ui"]["text"] == ['{\n    "a": [\n        1\n    ]\n}']
    assert run("PreviewAny", source=object)["ui"]["text"][0].startswith("<class")
