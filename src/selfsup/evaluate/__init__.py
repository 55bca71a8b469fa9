"""Frozen-feature evaluation: features, probes and label-free monitors."""

from .features import extract_features, raw_pixels
from .monitors import rankme
from .probes import knn_accuracy, knn_predict, linear_accuracy
from .suite import PROTOCOLS, evaluate_encoder

__all__ = ["PROTOCOLS", "evaluate_encoder", "extract_features", "knn_accuracy", "knn_predict",
           "linear_accuracy", "rankme", "raw_pixels"]
