"""The one error model loading raises (weights, weights.offline, weights.spec)."""


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says what failed and how to fix it."""
