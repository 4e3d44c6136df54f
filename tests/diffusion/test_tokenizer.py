from diffusion.tokenizer import BOS, EOS, ClipTokenizer, clip_vocabulary


def test_known_ids() -> None:
    tok = ClipTokenizer()
    assert tok("a photo of a cat") == [49406, 320, 1125, 539, 320, 2368, 49407]


def test_vocabulary_is_complete() -> None:
    vocab = clip_vocabulary().vocab
    assert len(vocab) == 49408
    assert vocab["<|startoftext|>"] == BOS and vocab["<|endoftext|>"] == EOS


def test_case_and_spacing_are_normalised() -> None:
    tok = ClipTokenizer()
    assert tok.ids("A   Photo") == tok.ids("a photo")
    assert tok.words("a photo") == [[320], [1125]]
