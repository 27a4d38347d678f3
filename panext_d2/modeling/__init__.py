"""Importing this package registers every backbone, head and meta-architecture."""
from . import backbone  # noqa: F401  (registrations)
from . import ssd  # noqa: F401  (SSD)
from . import isb  # noqa: F401  (SSDISB)
from . import encdec  # noqa: F401  (EncDecSegmentor)
from . import panext  # noqa: F401  (PaNeXt)
from . import lowcost  # noqa: F401  (FCNSkipHead, AtrousSegHead)
