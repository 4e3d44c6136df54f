import pytest

from diffusion.prompt import Segment, parse_weights, tokenize_prompt
from diffusion.tokenizer import BOS, EOS, ClipTokenizer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a cat", [("a cat", 1.0)]),
        ("a (cat:1.5) dog", [("a ", 1.0), ("cat", 1.5), (" dog", 1.0)]),
        ("(cat)", [("cat", 1.1)]),
        ("((cat))", [("cat", 1.1 * 1.1)]),
        ("[cat]", [("cat", 1 / 1.1)]),
        ("(a (b:2))", [("a ", 1.1), ("b", 2.2)]),
        (r"\(literal\) [x]", [("(literal) ", 1.0), ("x", 1 / 1.1)]),
        ("(unclosed", [("(unclosed", 1.0)]),
        ("(x:0.5)", [("x", 0.5)]),
        ("(a: b)", [("a: b", 1.1)]),
    ],
)
def test_parse_weights(text: str, expected: list[tuple[str, float]]) -> None:
    got = parse_weights(text)
    assert [s.text for s in got] == [t for t, _ in expected]
    assert [s.weight for s in got] == pytest.approx([w for _, w in expected])


def test_segments_of_equal_weight_merge() -> None:
    assert parse_weights("(a:1.2)(b:1.2)") == [Segment("ab", 1.2)]


def _tokenize(text: str, lookup=lambda name: None, warnings=None):
    tok = ClipTokenizer()
    return tokenize_prompt(text, tok.words, lookup, (warnings if warnings is not None else []).append, EOS)


def test_short_prompt_is_one_padded_window_with_weights() -> None:
    (window,) = _tokenize("a (cat:1.5)")
    assert len(window.tokens) == 77
    assert window.tokens[:4] == [BOS, 320, 2368, EOS]
    assert window.weights[:4] == [1.0, 1.0, 1.5, 1.0]
    assert set(window.tokens[4:]) == {EOS}


def test_long_prompt_is_chunked_between_words() -> None:
    windows = _tokenize(" ".join(["cat"] * 100))
    assert len(windows) == 2
    assert all(len(w.tokens) == 77 and w.tokens[0] == BOS for w in windows)
    assert windows[0].tokens.count(2368) == 75 and windows[1].tokens.count(2368) == 25


def test_embedding_vectors_are_inserted_and_missing_ones_warned() -> None:
    vec = [object(), object()]
    (window,) = _tokenize("a embedding:known, b", lookup=lambda name: vec if name == "known" else None)
    assert window.tokens[2:4] == vec
    warnings: list[str] = []
    _tokenize("embedding:nothere a", warnings=warnings)
    assert len(warnings) == 1 and "nothere" in warnings[0]


def test_embedding_weight_after_the_name() -> None:
    vec = [object(), object()]
    seen: list[str] = []

    def lookup(name: str):
        seen.append(name)
        return vec if name == "style" else None

    (window,) = _tokenize("a embedding:style:1.2, (b embedding:style:0.5 c)", lookup=lookup)
    assert seen == ["style", "style"]
    positions = [i for i, tok in enumerate(window.tokens) if tok is vec[0] or tok is vec[1]]
    assert [window.weights[i] for i in positions] == pytest.approx([1.2, 1.2, 0.55, 0.55])
    warnings: list[str] = []
    _tokenize("embedding:gone:1.3 x", warnings=warnings)
    assert len(warnings) == 1 and "'gone'" in warnings[0] and "1.3" not in warnings[0]
