"""Sampling with a random generator of its own, so a seeded call is reproducible even while
other calls generate on the same model in other threads.

transformers samples with the process-wide torch RNG: two concurrent calls draw from it
in an order nobody controls, so `torch.manual_seed(seed)` cannot make either of them
repeatable. Here the last logits processor applies temperature and top-p, draws the
next token with the call's own `torch.Generator`, and leaves only that token possible;
generate then decodes greedily and takes it.

    own_sampler(temperature=0.6, top_p=0.9, seed=7)  ->  a LogitsProcessor for generate(
        ..., do_sample=False, logits_processor=LogitsProcessorList([sampler]))
"""

from __future__ import annotations


def own_sampler(temperature: float, top_p: float, seed: int | None):
    """A logits processor that samples one token per step with its own seeded generator
    (seed None: a fresh random seed). Use one per call: it carries the generator's state."""
    import torch  # heavy: loaded with a model, not with the package
    from transformers import (  # heavy: loaded with a model, not with the package
        LogitsProcessor,
        TemperatureLogitsWarper,
        TopPLogitsWarper,
    )

    warpers = [TemperatureLogitsWarper(temperature)] + ([TopPLogitsWarper(top_p)] if top_p < 1.0 else [])

    class OwnSampler(LogitsProcessor):
        generator: torch.Generator | None = None

        def __call__(self, input_ids, scores):
            if self.generator is None:
                self.generator = torch.Generator(device=scores.device)
                if seed is None:
                    self.generator.seed()
                else:
                    self.generator.manual_seed(int(seed))
            for warp in warpers:
                scores = warp(input_ids, scores)
            probs = torch.softmax(scores.float(), dim=-1)
            chosen = torch.multinomial(probs, num_samples=1, generator=self.generator)
            only = torch.full_like(scores, float("-inf"))
            return only.scatter_(1, chosen, 0.0)

    return OwnSampler()
