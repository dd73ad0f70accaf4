"""Training the offline classifier: data sources and category rules (see guard/train.py)."""
