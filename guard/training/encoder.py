"""all-MiniLM-L6-v2 as a sentence encoder, for grouping near-duplicate examples before
the split (guard.training.dataset.assign) and nothing else: the offline classifier
itself reads the fine-tuned network (guard.offline_model).

    SentenceEncoder.load().encode(["How do I bake bread?"]).shape  ->  (1, 384)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from guard.encoders import minilm_path

MAX_TOKENS = 256  # all-MiniLM-L6-v2 was trained on 256 word pieces
BATCH = 64


class SentenceEncoder:
    """all-MiniLM-L6-v2 as its model card describes it: BERT, mean pooling over the
    attention mask, L2 normalisation; plain transformers, no sentence-transformers."""

    def __init__(self, model, tokenizer, max_tokens: int = MAX_TOKENS):
        self.model, self.tokenizer, self.max_tokens = model, tokenizer, max_tokens

    @classmethod
    def load(cls, folder: Path | None = None) -> SentenceEncoder:
        from transformers import AutoModel, AutoTokenizer  # heavy: only when an encoder is made

        folder = folder or minilm_path()
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
        return cls(model, tokenizer)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 embeddings, one row per text (computed BATCH texts at a time)."""
        import torch  # heavy: only when something is encoded

        rows = []
        with torch.inference_mode():
            for start in range(0, len(texts), BATCH):
                batch = self.tokenizer(
                    list(texts[start : start + BATCH]),
                    padding=True,
                    truncation=True,
                    max_length=self.max_tokens,
                    return_tensors="pt",
                )
                tokens = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(tokens.dtype)
                pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                rows.append(torch.nn.functional.normalize(pooled, p=2, dim=1).numpy())
        return np.concatenate(rows) if rows else np.zeros((0, self.model.config.hidden_size), dtype=np.float32)
