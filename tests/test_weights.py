"""weights/: loading real models (a tiny Llama folder, the bundled SmolLM2 GGUF) and the
messages a person gets when loading fails.

The hub errors come from the real huggingface_hub/transformers client talking to a stub
hub on 127.0.0.1 that answers like huggingface.co does for a gated or a missing repo
(same status codes and X-Error-Code headers); the offline error from HF_HUB_OFFLINE=1.
Those settings are read at import time, so those checks run in a fresh interpreter.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from serve import free_port

import weights
from weights import LoadOptions, ModelLoadError, load_causal_lm
from weights.offline import bundled_gguf, offline_chat_model

ROOT = Path(__file__).resolve().parent.parent
GATED = "meta-llama/Meta-Llama-3-8B-Instruct"


def load_in_fresh_python(spec: str, **env: str) -> subprocess.CompletedProcess:
    """load_causal_lm(spec) in a new interpreter with `env`; prints the ModelLoadError."""
    code = (
        f"import weights\ntry:\n    weights.load_causal_lm({spec!r})\nexcept weights.ModelLoadError as e:\n"
        "    print(e)\n    raise SystemExit(3)\n"
    )
    clean = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=dict(clean, **env),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


class StubHub(http.server.BaseHTTPRequestHandler):
    """Answers every request as huggingface.co does for a gated repo (401 + GatedRepo)
    or a repo that does not exist (401 + RepoNotFound)."""

    def answer(self) -> None:
        gated = self.path.startswith(f"/{GATED}/") or self.path.startswith(f"/api/models/{GATED}")
        self.send_response(401)
        self.send_header("X-Error-Code", "GatedRepo" if gated else "RepoNotFound")
        self.send_header(
            "X-Error-Message",
            f"Access to model {GATED} is restricted. You must have access "
            "to it and be authenticated to access it. Please log in."
            if gated
            else "Repository not found",
        )
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = answer

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def stub_hub():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), StubHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_loads_a_tiny_model_folder_in_eval_mode(tiny_chat_path):
    import torch

    model, tokenizer = load_causal_lm(str(tiny_chat_path))
    assert not model.training and model.dtype == torch.float32  # auto on CPU
    assert model.config.model_type == "llama" and tokenizer.chat_template
    half, _ = load_causal_lm(str(tiny_chat_path), LoadOptions(dtype="bfloat16"))
    assert half.dtype == torch.bfloat16


def test_missing_local_path_says_so(tmp_path):
    with pytest.raises(ModelLoadError, match="Model folder not found"):
        load_causal_lm(str(tmp_path / "no-such-model"))
    with pytest.raises(ModelLoadError, match="GGUF file not found"):
        load_causal_lm(str(tmp_path / "model.gguf"))
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_causal_lm(str(tmp_path))


def test_unknown_dtype_is_refused():
    with pytest.raises(ModelLoadError, match="Unknown dtype 'int3'"):
        load_causal_lm("unused", LoadOptions(dtype="int3"))


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the CPU-only error")
@pytest.mark.parametrize("option, bits", [("load_in_4bit", 4), ("load_in_8bit", 8)])
def test_quantized_loading_without_cuda_is_a_clear_error(tiny_chat_path, option, bits):
    with pytest.raises(ModelLoadError, match=f"{bits}-bit loading uses bitsandbytes, which needs a CUDA GPU"):
        load_causal_lm(str(tiny_chat_path), LoadOptions(**{option: True}))


def test_4bit_config_is_nf4_with_bf16_compute(monkeypatch):
    import torch

    monkeypatch.setattr(weights, "_cuda", lambda: True)  # builds the config only; nothing loads
    config = weights.quantization_config(LoadOptions(load_in_4bit=True))
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4"
    assert config.bnb_4bit_compute_dtype == torch.bfloat16
    assert weights.quantization_config(LoadOptions(load_in_8bit=True)).load_in_8bit
    with pytest.raises(ModelLoadError, match="not both"):
        weights.quantization_config(LoadOptions(load_in_4bit=True, load_in_8bit=True))


@pytest.mark.slow
def test_unreachable_hub_offline_suggests_a_folder_or_offline():
    result = load_in_fresh_python("nobody/no-such-model", HF_HUB_OFFLINE="1")
    assert result.returncode == 3, result.stderr[-2000:]
    assert "Hugging Face Hub is unreachable" in result.stdout and "'offline'" in result.stdout


@pytest.mark.slow
def test_gated_model_without_token_says_accept_the_license_and_set_hf_token():
    with stub_hub() as hub:
        result = load_in_fresh_python(GATED, HF_ENDPOINT=hub)
        with_token = load_in_fresh_python(GATED, HF_ENDPOINT=hub, HF_TOKEN="hf_not_granted")
        missing = load_in_fresh_python("nobody/no-such-model", HF_ENDPOINT=hub)
    assert result.returncode == 3, result.stderr[-2000:]
    assert f"Accept its license on https://huggingface.co/{GATED}" in result.stdout
    assert "HF_TOKEN is not set" in result.stdout
    assert "A token is set (HF_TOKEN or `hf auth login`): check that it belongs" in with_token.stdout
    assert "neither a local folder, a .gguf file, nor a model on the Hugging Face Hub" in missing.stdout
    assert "set HF_TOKEN" in missing.stdout


def test_unwritable_cache_is_a_clear_error(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ModelLoadError, match="Cannot write the converted offline model .* set MODEL_CACHE_DIR"):
        offline_chat_model(blocker / "cache")


@pytest.fixture(scope="module")
def fresh_cache(tmp_path_factory) -> Path:
    """A cache folder that two processes fill with the converted SmolLM2 at the same time."""
    cache = tmp_path_factory.mktemp("model-cache")
    code = f"from pathlib import Path; from weights import offline_chat_model as m; print(m(Path({str(cache)!r})))"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_out, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-2000:]
    assert outputs[0][0] == outputs[1][0] == f"{cache / 'SmolLM2-135M-Instruct'}\n"
    return cache


@pytest.mark.slow
def test_offline_model_is_converted_once_and_atomically(fresh_cache, monkeypatch):
    target = fresh_cache / "SmolLM2-135M-Instruct"
    assert sorted(p.name for p in fresh_cache.iterdir()) == ["SmolLM2-135M-Instruct"]  # no temp left
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in target.iterdir()}
    monkeypatch.setattr("weights.offline.bundled_gguf", lambda: pytest.fail("converted again"))
    assert offline_chat_model(fresh_cache) == target


@pytest.mark.slow
def test_gguf_file_loads_the_same_model_as_the_converted_folder(fresh_cache):
    import torch

    from_gguf, tokenizer = load_causal_lm(str(bundled_gguf()))
    converted, converted_tokenizer = load_causal_lm(str(fresh_cache / "SmolLM2-135M-Instruct"))
    text = "The capital of France is"
    ids = tokenizer(text, return_tensors="pt").input_ids
    assert ids.tolist() == converted_tokenizer(text, return_tensors="pt").input_ids.tolist()
    assert converted_tokenizer.chat_template == tokenizer.chat_template
    with torch.inference_mode():
        a, b = from_gguf(ids).logits, converted(ids).logits
    assert torch.equal(a, b)
    assert tokenizer.decode(a[0, -1].argmax()) == " Paris"


def test_cudnn_attention_is_turned_off_for_a_model_on_cuda_only(tiny_chat_path):
    """On CUDA, cuDNN attention rebuilt a graph for every new sequence length (compute.
    steady_attention says what that cost); a CPU model leaves the setting alone."""
    import torch

    from compute import steady_attention

    before = torch.backends.cuda.cudnn_sdp_enabled()
    try:
        torch.backends.cuda.enable_cudnn_sdp(True)
        model, _ = load_causal_lm(str(tiny_chat_path))
        steady_attention(model)
        assert torch.backends.cuda.cudnn_sdp_enabled()

        class OnCuda:  # only its device is read
            device = torch.device("cuda", 0)

        steady_attention(OnCuda())
        assert not torch.backends.cuda.cudnn_sdp_enabled()
    finally:
        torch.backends.cuda.enable_cudnn_sdp(before)


@pytest.mark.parametrize(
    "spec, kind",
    [
        ("offline", "offline"),
        (" offline ", "offline"),
        ("http://127.0.0.1:8080/v1", "endpoint"),
        ("https://x.example", "endpoint"),
        ("./Llama-Guard-3-8B-Q8_0.gguf", "gguf"),
        ("model.GGUF", "gguf"),
        ("./my-model", "folder"),
        ("/no/such/folder", "folder"),
        ("a/b/c", "folder"),
        ("meta-llama/Meta-Llama-3-8B-Instruct", "hub"),
    ],
)
def test_one_dispatch_names_every_kind_of_model_spec(spec, kind):
    from weights.spec import model_spec

    assert model_spec(spec).kind == kind


def test_a_missing_folder_or_gguf_file_says_so(tmp_path):
    from weights.spec import model_spec, pretrained_source

    with pytest.raises(ModelLoadError, match="GGUF file not found"):
        pretrained_source(model_spec(str(tmp_path / "x.gguf")))
    with pytest.raises(ModelLoadError, match="Model folder not found"):
        pretrained_source(model_spec(str(tmp_path / "nothing")))
    with pytest.raises(ModelLoadError, match="no config.json"):
        pretrained_source(model_spec(str(tmp_path)))
