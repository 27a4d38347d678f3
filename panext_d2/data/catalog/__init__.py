"""Dataset registrations: importing this package registers every dataset name."""
from . import builtin  # noqa: F401  (registers the builders' datasets)
from . import coco_samples, synthetic  # noqa: F401  (register the synthetic sets and COCO samples)
