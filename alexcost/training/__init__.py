"""Training: what one step of SGD costs and what a whole schedule costs, derived without running it (no torch).

`training_cost` gives a `TrainingCost`: backward counts, the tensors autograd keeps, the
model state and a memory model; its ``schedule()`` gives the whole run (`Schedule`).
"""

from .schedule import DEFAULT_EPOCHS, DEFAULT_IMAGES, OPENAI, PFS_DAY, Schedule
from .step import DEVICES, MEMORY_LEFT_OUT, OPTIMIZERS, LayerTraining, SavedTensor, StepMemory, TrainingCost, training_cost

__all__ = ["DEFAULT_EPOCHS", "DEFAULT_IMAGES", "DEVICES", "MEMORY_LEFT_OUT", "OPENAI", "OPTIMIZERS", "PFS_DAY",
           "LayerTraining", "SavedTensor", "Schedule", "StepMemory", "TrainingCost", "training_cost"]
