"""The whole training run: images x epochs, exact FLOPs, petaflop/s-days, and OpenAI's rule beside them."""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from ..layers import arguments as check

DEFAULT_IMAGES = 1_200_000
"""ImageNet's training set as the AlexNet paper rounds it (1,281,167 images in ILSVRC-2012)."""
DEFAULT_EPOCHS = 90
"""The paper's "roughly 90 cycles through the training set"."""
PFS_DAY = 10**15 * 86_400
"""A petaflop/s-day: 10^15 operations a second for a day (OpenAI's unit)."""
OPENAI = {"pfs_days": 0.0054, "forward_macs": 750_000_000, "images": 1_200_000, "epochs": 90,
          "source": "OpenAI, \"AI and Compute\" (2018), appendix: 1.2M images x 90 epochs x forward "
                    "multiply-adds x 2 (FLOPs per multiply-add) x 3 (forward and backward)"}
"""OpenAI's published estimate for AlexNet and the inputs of its formula."""


@dataclass(frozen=True)
class Schedule:
    """``images`` per epoch for ``epochs`` epochs in steps of ``batch``: exact training FLOPs (2 x
    the forward and backward MACs of every image), petaflop/s-days, and OpenAI's rule beside them."""

    images: int
    epochs: int
    batch: int
    forward_macs_per_image: int
    backward_macs_per_image: int

    @classmethod
    def of(cls, training: TrainingCost, images: int, epochs: int) -> "Schedule":
        images = check.integer(images, "images")
        epochs = check.integer(epochs, "epochs")
        return cls(images, epochs, training.batch, training.forward_macs // training.batch,
                   training.backward_macs // training.batch)

    @property
    def samples(self) -> int:
        return self.images * self.epochs

    @property
    def steps(self) -> int:
        """Optimizer steps: ``ceil(images / batch)`` per epoch (the last batch of an epoch may be short)."""
        return ceil(self.images / self.batch) * self.epochs

    @property
    def train_flops(self) -> int:
        return 2 * (self.forward_macs_per_image + self.backward_macs_per_image) * self.samples

    @property
    def pfs_days(self) -> float:
        return self.train_flops / PFS_DAY

    @property
    def rule_flops(self) -> int:
        """OpenAI's rule on alexcost's exact forward MACs: forward MACs x 2 x 3 per image."""
        return 6 * self.forward_macs_per_image * self.samples

    @property
    def rule_pfs_days(self) -> float:
        return self.rule_flops / PFS_DAY

    def to_dict(self) -> dict:
        quoted = 6 * OPENAI["forward_macs"] * OPENAI["images"] * OPENAI["epochs"]
        return {"images": self.images, "epochs": self.epochs, "steps": self.steps,
                "forward_macs_per_image": self.forward_macs_per_image,
                "backward_macs_per_image": self.backward_macs_per_image,
                "train_flops": self.train_flops, "pfs_days": self.pfs_days,
                "openai": {"published_pfs_days": OPENAI["pfs_days"], "forward_macs": OPENAI["forward_macs"],
                           "formula_flops": quoted, "formula_pfs_days": quoted / PFS_DAY,
                           "rule_on_exact_forward_flops": self.rule_flops,
                           "rule_on_exact_forward_pfs_days": self.rule_pfs_days, "source": OPENAI["source"]}}
