"""How ``edgekit convert`` converts: one frozen record, filled from flags, written into
manifest.json beside every variant it made, and compared with a later command's through the
same record."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

# Not how a file is made but which files and from where: not recorded with a file.
SELECTION_FIELDS = ("variants", "data")


@dataclass(frozen=True)
class ConvertSettings:
    """The variants to make and how; the defaults are ``edgekit convert``'s."""

    variants: Optional[tuple[str, ...]] = None  # names in the registry's order; None: all
    calibration_size: int = 500     # training images that calibrate integer variants
    probe_size: int = 500           # validation images each file is checked on against Keras
    seed: int = 0                   # of both samples and of the quantization-aware fine-tuning
    qat_epochs: int = 2
    qat_learning_rate: float = 1e-4
    fold_batchnorm: bool = True     # quantize the graph with post-ReLU BatchNorm folded away
    data: Optional[str] = None      # where the run's data is now, if it moved
    max_drop: Optional[float] = None  # the *-mixed variants' budget: validation points below Keras

    def __post_init__(self):
        from edge_runtime.errors import UserError, check_counts
        from edgekit.train.cli import check_seed

        from .variants import BUDGETED, parse_variants

        if self.variants is not None:
            parse_variants(",".join(self.variants))  # an unknown name is one line
        check_counts(("--calibration-size", self.calibration_size),
                     ("--probe-size", self.probe_size), ("--qat-epochs", self.qat_epochs))
        check_seed(self.seed)
        if not self.qat_learning_rate > 0:  # a NaN too
            raise UserError(f"--qat-learning-rate must be positive, got {self.qat_learning_rate}")
        if self.max_drop is not None and not 0 <= self.max_drop < 100:  # a NaN too
            raise UserError(f"--max-drop must be accuracy points from 0 to 100, got "
                            f"{self.max_drop}")
        budgeted = [name for name in BUDGETED if name in (self.variants or ())]
        if self.max_drop is None and budgeted:
            raise UserError(f"{budgeted[0]} needs an accuracy budget: --max-drop POINTS (0.1, "
                            "say)")

    def chosen_variants(self) -> list:
        """The Variant records asked for, in the registry's order."""
        from .variants import BUDGETED, VARIANTS

        names = self.variants or [name for name in VARIANTS
                                  if name not in BUDGETED or self.max_drop is not None]
        return [VARIANTS[name] for name in names]

    def recorded(self) -> dict:
        """What a file made with these settings records in manifest.json."""
        return {key: value for key, value in asdict(self).items()
                if key not in SELECTION_FIELDS}
