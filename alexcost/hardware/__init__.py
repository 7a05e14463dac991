"""GPUs and time: the spec-sheet catalog, the roofline bound, and predictions of a step on a GPU (no torch)."""

from .catalog import CATALOG, GPU, gpu, match
from .model import Prediction, predict

__all__ = ["CATALOG", "GPU", "Prediction", "gpu", "match", "predict"]
