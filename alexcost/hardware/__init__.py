"""GPUs and time: the spec-sheet catalog, kernels, the calibrated time model and its bound, and
predictions of a training step on a GPU (no torch)."""

from .catalog import CATALOG, GPU, gpu, match
from .model import Estimate, Prediction, estimate, predict

__all__ = ["CATALOG", "GPU", "Estimate", "Prediction", "estimate", "gpu", "match", "predict"]
