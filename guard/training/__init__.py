"""Training and evaluating the offline classifier: data sources, category rules, the
split, the trainer and the figures. `python -m guard.train` and `python -m guard.evaluate`
run it; nothing in the runtime (guard.offline, guard.offline_model) imports this package."""
