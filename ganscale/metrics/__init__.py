"""Metrics: toy mode coverage (modes.py) and image metrics (FID, KID, IS, precision/recall,
class accuracy) over a pluggable feature extractor (evaluator.py)."""
