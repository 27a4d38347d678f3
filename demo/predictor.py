"""Run a model on images and render its predictions with detectron2's Visualizer."""
import glob
import os
from typing import Dict, Iterator, List, Optional, Tuple

import cv2
import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.catalog import Metadata
from detectron2.engine import DefaultPredictor
from detectron2.utils.visualizer import ColorMode, Visualizer

from panext_d2.data.image_io import read_image
from panext_d2.engine import SafeCheckpointer

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def apply_confidence_threshold(cfg, threshold: float):
    """Set detectron2's test-time score thresholds (the keys that exist in ``cfg``)."""
    cfg = cfg.clone()
    cfg.defrost()
    for node, key in ((cfg.MODEL.RETINANET, "SCORE_THRESH_TEST"),
                      (cfg.MODEL.ROI_HEADS, "SCORE_THRESH_TEST"),
                      (cfg.MODEL.PANOPTIC_FPN.COMBINE, "INSTANCES_CONFIDENCE_THRESH")):
        if key in node:
            node[key] = threshold
    cfg.freeze()
    return cfg


def read_bgr(path: str) -> np.ndarray:
    """An HxWx3 uint8 BGR image; errors name the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"input image not found: {path}")
    try:
        return read_image(path, format="BGR")
    except Exception as e:
        raise ValueError(f"cannot read image {path}: {e}") from e


def expand_inputs(inputs: List[str]) -> List[str]:
    """Files named by ``--input``: files as given, folders as their images, glob patterns
    expanded. A path that matches nothing raises FileNotFoundError naming it."""
    files = []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(f for f in glob.glob(os.path.join(item, "*"))
                           if f.lower().endswith(IMAGE_EXTENSIONS))
            if not found:
                raise FileNotFoundError(f"no images in folder: {item}")
            files.extend(found)
        elif any(c in item for c in "*?["):
            found = sorted(glob.glob(os.path.expanduser(item)))
            if not found:
                raise FileNotFoundError(f"no files match: {item}")
            files.extend(found)
        elif os.path.isfile(item):
            files.append(item)
        else:
            raise FileNotFoundError(f"input not found: {item}")
    return files


def dataset_images(name: str, max_images: Optional[int] = None) -> List[str]:
    """File names of the first ``max_images`` images of a registered dataset."""
    dicts = DatasetCatalog.get(name)
    if max_images is not None:
        dicts = dicts[:max_images]
    return [d["file_name"] for d in dicts]


def is_video(path: str) -> bool:
    return path.lower().endswith(VIDEO_EXTENSIONS)


def _pad_names(names, needed: int) -> List[str]:
    names = list(names or [])
    return names + [f"class {i}" for i in range(len(names), needed)]


def metadata_for(metadata: Metadata, predictions: Dict) -> Metadata:
    """``metadata``, or a copy whose class names cover every class id in ``predictions`` (an
    untrained model or a dataset without names would otherwise index past the lists)."""
    things = stuff = 0
    if "instances" in predictions and len(predictions["instances"]):
        things = int(predictions["instances"].pred_classes.max()) + 1
    if "sem_seg" in predictions:
        stuff = predictions["sem_seg"].shape[0]
    if "panoptic_seg" in predictions and predictions["panoptic_seg"][1] is not None:
        for seg in predictions["panoptic_seg"][1]:
            if seg.get("isthing", True):
                things = max(things, seg["category_id"] + 1)
            else:
                stuff = max(stuff, seg["category_id"] + 1)
    have_things = len(metadata.get("thing_classes", []) or [])
    have_stuff = len(metadata.get("stuff_classes", []) or [])
    if things <= have_things and stuff <= have_stuff:
        return metadata
    fields = dict(metadata.as_dict())
    fields["thing_classes"] = _pad_names(fields.get("thing_classes"), things)
    fields["stuff_classes"] = _pad_names(fields.get("stuff_classes"), stuff)
    for colors, names in (("thing_colors", "thing_classes"), ("stuff_colors", "stuff_classes")):
        if colors in fields and len(fields[colors]) < len(fields[names]):
            del fields[colors]  # the Visualizer picks colours itself
    return Metadata(**fields)


def render(image_rgb: np.ndarray, predictions: Dict, metadata: Metadata,
           confidence_threshold: float = 0.0) -> Tuple[np.ndarray, str]:
    """The RGB image with the predictions drawn, and which output was drawn: ``panoptic_seg``
    if the model returns it, else ``instances`` (those scoring at least the threshold), else
    ``sem_seg``."""
    metadata = metadata_for(metadata, predictions)
    visualizer = Visualizer(image_rgb, metadata, instance_mode=ColorMode.IMAGE)
    if "panoptic_seg" in predictions:
        panoptic_seg, segments_info = predictions["panoptic_seg"]
        out = visualizer.draw_panoptic_seg(panoptic_seg.to("cpu"), segments_info)
        kind = "panoptic_seg"
    elif "instances" in predictions:
        instances = predictions["instances"].to("cpu")
        if instances.has("scores"):
            instances = instances[instances.scores >= confidence_threshold]
        out = visualizer.draw_instance_predictions(instances)
        kind = "instances"
    elif "sem_seg" in predictions:
        out = visualizer.draw_sem_seg(predictions["sem_seg"].argmax(dim=0).to("cpu"))
        kind = "sem_seg"
    else:
        raise ValueError(f"the model returned none of panoptic_seg, instances, sem_seg: "
                         f"{sorted(predictions)}")
    return out.get_image(), kind


class Predictor(DefaultPredictor):
    """detectron2's DefaultPredictor, loading MODEL.WEIGHTS through SafeCheckpointer so that
    a truncated or foreign checkpoint raises an error naming the file."""

    def __init__(self, cfg):
        without_weights = cfg.clone()
        without_weights.defrost()
        without_weights.MODEL.WEIGHTS = ""
        super().__init__(without_weights)
        self.cfg = cfg.clone()
        SafeCheckpointer(self.model).load(cfg.MODEL.WEIGHTS)


class VisualizationDemo:
    """A model from ``cfg`` (weights from MODEL.WEIGHTS) and the metadata to draw with."""

    def __init__(self, cfg, metadata_name: Optional[str] = None, confidence_threshold: float = 0.5):
        self.cfg = apply_confidence_threshold(cfg, confidence_threshold)
        self.confidence_threshold = confidence_threshold
        if metadata_name is None:
            metadata_name = cfg.DATASETS.TEST[0] if len(cfg.DATASETS.TEST) else "__unused"
        self.metadata = MetadataCatalog.get(metadata_name)
        self.predictor = Predictor(self.cfg)

    def run_on_image(self, image_bgr: np.ndarray) -> Tuple[Dict, np.ndarray, str]:
        """Predictions, the rendered BGR image, and which output was drawn."""
        predictions = self.predictor(image_bgr)
        rendered, kind = render(image_bgr[:, :, ::-1], predictions, self.metadata,
                                self.confidence_threshold)
        return predictions, np.ascontiguousarray(rendered[:, :, ::-1]), kind

    def run_on_video(self, capture: cv2.VideoCapture) -> Iterator[np.ndarray]:
        """Rendered BGR frames of an opened video."""
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            yield self.run_on_image(frame)[1]
