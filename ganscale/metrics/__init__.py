"""Metrics: what G is measured by, chosen by the kind of data, and run during training by a callback.

    evaluation.py   EVALUATIONS registry: points -> mode coverage (modes.py), image -> ImageEvaluator
    callback.py     EvalAndPlot: evaluates G_ema at intervals on every rank, rank 0 writes metrics and plots
    evaluator.py    FID/KID/IS/precision-recall/class accuracy over a pluggable feature extractor (extractors.py)
    plots.py        sample figures: 2D scatter over the mode means, image grids
"""
