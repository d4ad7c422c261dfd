"""Self-supervised training of DKPNet (``dkp-slam train``; see docs/TRAINING.md).

- :mod:`.data`: :class:`HomographyPairs`, image pairs made from any unlabeled images by random
  homographies and photometric changes;
- :mod:`.losses`: :class:`SelfSupervisedLoss` (similarity, peaky, dual-softmax, triplet,
  Siamese Huber, keypoint position, distillation from ALIKED);
- :mod:`.trainer`: :func:`train`, resumable runs with checkpoints and CSV/JSON logs.
"""

from .data import HomographyPairs, collect_sources
from .losses import LOSS_DEFAULTS, SelfSupervisedLoss
from .trainer import TRAIN_DEFAULTS, load_checkpoint, load_train_config, resolve_config, train

__all__ = ["HomographyPairs", "collect_sources", "SelfSupervisedLoss", "LOSS_DEFAULTS",
           "TRAIN_DEFAULTS", "train", "load_train_config", "resolve_config", "load_checkpoint"]
