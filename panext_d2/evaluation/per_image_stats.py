"""The shared part of the evaluators that keep one statistics array per image (empty-image
and image-level metrics): collecting, gathering over processes, stacking, dumping JSON."""
import json
import os
from collections import OrderedDict
from typing import Dict, Optional

import numpy as np
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm
from detectron2.utils.file_io import PathManager


class PerImageStatsEvaluator(DatasetEvaluator):
    """Subclasses append one (4, C) int array per image to ``self._stats`` in ``process``
    and, in ``evaluate``, summarise :meth:`gathered_stats` and return :meth:`finish`."""

    result_key = ""  # the task name of the results
    result_file = ""  # the JSON file written to output_dir

    def __init__(self, *, distributed: bool = True, output_dir: Optional[str] = None):
        self._distributed = distributed
        self._output_dir = output_dir
        self._stats = []

    def reset(self):
        self._stats = []

    def gathered_stats(self, width: int) -> Optional[np.ndarray]:
        """(N, 4, width) statistics of every image of every process on the main process;
        None on the others."""
        stats = self._stats
        if self._distributed:
            comm.synchronize()
            stats = [s for part in comm.gather(stats, dst=0) for s in part]
            if not comm.is_main_process():
                return None
        return np.stack(stats) if stats else np.zeros((0, 4, width), dtype=np.int64)

    def finish(self, results: Dict) -> OrderedDict:
        """``results`` under :attr:`result_key`, also written to ``output_dir`` (NaN as null)."""
        if self._output_dir:
            PathManager.mkdirs(self._output_dir)
            with PathManager.open(os.path.join(self._output_dir, self.result_file), "w") as f:
                json.dump({k: (None if v != v else v) for k, v in results.items()}, f, indent=1)
        return OrderedDict({self.result_key: results})
