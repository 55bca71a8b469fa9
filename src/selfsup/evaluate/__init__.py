"""Frozen-feature evaluation: features, probes, few-shot curves, layer studies and label-free
monitors."""

from ..collapse import CollapseCheck, embedding_std, rankme
from .features import extract_features, parse_preprocessing, raw_pixels
from .fewshot import balanced_subset, fewshot_curve
from .layers import layer_features, layer_probes, load_projector
from .probes import knn_accuracy, knn_predict, linear_accuracy, linear_probe, nb_accuracy
from .suite import DEFAULT_PROTOCOLS, PROTOCOLS, evaluate_encoder

__all__ = ["DEFAULT_PROTOCOLS", "PROTOCOLS", "CollapseCheck", "balanced_subset",
           "embedding_std", "evaluate_encoder", "extract_features", "fewshot_curve",
           "knn_accuracy", "knn_predict", "layer_features", "layer_probes", "linear_accuracy",
           "linear_probe", "load_projector", "nb_accuracy", "parse_preprocessing", "rankme",
           "raw_pixels"]
