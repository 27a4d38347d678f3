"""detectron2's COCOPanopticEvaluator, with PQ left undefined (NaN) for a group of classes
that neither ground truth nor predictions contain.

panopticapi averages PQ over the classes that occur and divides by their count; when a group
has none (a things-only dataset, or a young model that predicts no stuff on a set without
stuff) it raises ``ZeroDivisionError``, and with ``TEST.EVAL_PERIOD`` set that kills training.
PQ of an empty group is undefined, so it is reported as NaN; every other number is
panopticapi's own.
"""
import contextlib
import logging
import math

from detectron2.evaluation import COCOPanopticEvaluator
from panopticapi.evaluation import PQStat

logger = logging.getLogger(__name__)


def _in_group(info, isthing):
    return isthing is None or (info["isthing"] == 1) == isthing


@contextlib.contextmanager
def undefined_pq_as_nan():
    """Within the block, panopticapi's group averages return NaN for a group without
    classes instead of raising."""
    original = PQStat.pq_average

    def pq_average(self, categories, isthing):
        occurring = [
            label
            for label, info in categories.items()
            if _in_group(info, isthing)
            and self.pq_per_cat[label].tp + self.pq_per_cat[label].fp + self.pq_per_cat[label].fn
        ]
        if occurring:
            return original(self, categories, isthing)
        group = {None: "All", True: "Things", False: "Stuff"}[isthing]
        logger.warning(f"PQ of {group} is undefined: no class of the group in ground truth or predictions")
        per_class = {label: {"pq": 0.0, "sq": 0.0, "rq": 0.0} for label, info in categories.items()
                     if _in_group(info, isthing)}
        return {"pq": math.nan, "sq": math.nan, "rq": math.nan, "n": 0}, per_class

    PQStat.pq_average = pq_average
    try:
        yield
    finally:
        PQStat.pq_average = original


class PanopticQualityEvaluator(COCOPanopticEvaluator):
    """COCOPanopticEvaluator whose PQ / SQ / RQ of an absent group are NaN (see module)."""

    def evaluate(self):
        with undefined_pq_as_nan():
            return super().evaluate()
