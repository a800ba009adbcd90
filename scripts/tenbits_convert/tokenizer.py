"""tokenizer.json (Hugging Face ``tokenizers``, byte-level BPE) from a GGUF's metadata."""

from __future__ import annotations

from . import ConversionError
from .gguf_io import GGUFModel

# Pre-tokenizers of the Hugging Face originals, keyed by tokenizer.ggml.pre.
_QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def _byte_level(use_regex: bool) -> dict:
    return {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
            "use_regex": use_regex}


def _split_then_bytes(regex: str) -> dict:
    return {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
        _byte_level(False)]}


def pretokenizer_for(pre: str) -> tuple[dict | None, dict]:
    """(normalizer, pre_tokenizer) for a `tokenizer.ggml.pre` value."""
    if pre in ("smollm", "starcoder", "refact"):
        # StarCoder-family tokenizers: each digit on its own, then GPT-2 regex.
        return None, {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True}, _byte_level(True)]}
    if pre in ("default", "gpt2"):
        return None, _byte_level(True)
    if pre == "qwen2":
        return {"type": "NFC"}, _split_then_bytes(_QWEN2_REGEX)
    if pre in ("llama-bpe", "llama3"):
        return None, _split_then_bytes(_LLAMA3_REGEX)
    raise ConversionError(
        f"unsupported pre-tokenizer tokenizer.ggml.pre={pre!r}; known: smollm, starcoder, "
        "refact, default, gpt2, qwen2, llama-bpe")


def build_tokenizer(m: GGUFModel) -> tuple[dict, dict]:
    """Returns (tokenizer.json content, special-token info for config.json)."""
    model_type = m.get("tokenizer.ggml.model")
    if model_type != "gpt2":
        raise ConversionError(
            f"unsupported tokenizer model tokenizer.ggml.model={model_type!r}; only byte-level "
            "BPE ('gpt2') is supported")
    tokens = list(m.get("tokenizer.ggml.tokens"))
    merges = list(m.get("tokenizer.ggml.merges"))
    types = [int(t) for t in m.get("tokenizer.ggml.token_type", [1] * len(tokens))]
    pre = m.get("tokenizer.ggml.pre", "default")
    normalizer, pre_tokenizer = pretokenizer_for(pre)

    vocab: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        if tok in vocab:
            raise ConversionError(f"duplicate token {tok!r} at ids {vocab[tok]} and {i}")
        vocab[tok] = i

    added = []
    for i, (tok, ty) in enumerate(zip(tokens, types)):
        # GGUF token types: 1 normal, 2 unknown, 3 control, 4 user-defined,
        # 5 unused, 6 byte.  Control tokens are special; user-defined ones are
        # matched verbatim but are not special.
        if ty in (3, 4):
            added.append({"id": i, "content": tok, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": ty == 3})

    def opt_id(key):
        v = m.get(key, None)
        return None if v is None else int(v)

    bos, eos = opt_id("tokenizer.ggml.bos_token_id"), opt_id("tokenizer.ggml.eos_token_id")
    add_bos = bool(m.get("tokenizer.ggml.add_bos_token", False))
    add_eos = bool(m.get("tokenizer.ggml.add_eos_token", False))

    if add_bos or add_eos:
        single = ([{"SpecialToken": {"id": tokens[bos], "type_id": 0}}] if add_bos else []) + \
            [{"Sequence": {"id": "A", "type_id": 0}}] + \
            ([{"SpecialToken": {"id": tokens[eos], "type_id": 0}}] if add_eos else [])
        specials = {}
        for flag, tid in ((add_bos, bos), (add_eos, eos)):
            if flag:
                specials[tokens[tid]] = {"id": tokens[tid], "ids": [tid], "tokens": [tokens[tid]]}
        post_processor = {"type": "TemplateProcessing", "single": single,
                          "pair": single + [{"Sequence": {"id": "B", "type_id": 1}}],
                          "special_tokens": specials}
    else:
        post_processor = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                          "use_regex": True}

    tok_json = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": post_processor,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }
    info = {"bos_token_id": bos, "eos_token_id": eos,
            "pad_token_id": opt_id("tokenizer.ggml.padding_token_id"),
            "add_bos_token": add_bos, "add_eos_token": add_eos, "pre_tokenizer": pre}
    return tok_json, info


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable unicode character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))
