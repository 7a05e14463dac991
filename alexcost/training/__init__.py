"""Training: what one step of SGD costs and what a whole schedule costs, derived without running it (no torch).

`training_cost` gives a `TrainingCost`: backward counts, the tensors autograd keeps, the
model state and a memory model; its ``schedule()`` gives the whole run (`Schedule`). One walk
over the layers (`alexcost.training.walk`) gives all of it, asking each layer's rules.
"""

from .memory import MEMORY_LEFT_OUT, StepMemory
from .records import LayerTraining, SavedTensor
from .schedule import DEFAULT_EPOCHS, DEFAULT_IMAGES, OPENAI, PFS_DAY, Schedule
from .step import DEVICES, OPTIMIZERS, TrainingCost, training_cost

__all__ = ["DEFAULT_EPOCHS", "DEFAULT_IMAGES", "DEVICES", "MEMORY_LEFT_OUT", "OPENAI", "OPTIMIZERS", "PFS_DAY",
           "LayerTraining", "SavedTensor", "Schedule", "StepMemory", "TrainingCost", "training_cost"]
