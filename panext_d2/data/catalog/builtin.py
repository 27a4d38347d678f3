"""Registrations of the theses' datasets, read from ``$DETECTRON2_DATASETS`` (default ``datasets``).

COCO panoptic and Cityscapes themselves are detectron2's built-ins. The sets below are
built from them (and from SIIM-ACR) by ``tools/build_*.py``; the layout under
``$DETECTRON2_DATASETS``::

    coco/                                  detectron2's layout (source)
      annotations/instances_{train,val}2017.json
      {train,val}2017/*.jpg
    coco_person/annotations/               tools/build_coco_person.py
      instances_{train,val}2017.json         images with a person, person annotations only
    coco_isb_shapes/annotations/           tools/build_coco_person.py
      instances_{train,val}2017.json         ISB-shape images, all their person annotations
      instances_matched_{train,val}2017.json same images, ISB-shape annotations only
    coco_bikecar/                          tools/build_coco_bikecar.py
      {train,val}2017.json                   per-image records (+ foreground_classes)
      sem_seg/{train,val}2017/<id:012d>.png  0 background, 1 bicycle, 2 car
    siim_acr/
      train-rle.csv                          Kaggle RLE csv (source)
      images/<ImageId>.png                   source, or written from DICOM by the tool
      masks/<ImageId>.png                    tools/build_siim_acr.py: 0 / 1
      {train,val,test}.json                  81/9/10 stratified split
    cityscapes/                            detectron2's layout (source)
      gtFine/{train,val}/<city>/*_gtFine_instanceIds.png
      leftImg8bit/{train,val}/<city>/*_leftImg8bit.png
    cityscapes_person_crops/               tools/build_cityscapes_person_crops.py
      {320x192,160x96}_bg{0,5,10}/
        {train,val}.json
        {train,val}/images/*.png, {train,val}/masks/*.png (0 / 1)

Registered names: ``coco_person_{train,val}``, ``coco_isb_shapes_{train,val}``,
``coco_isb_shapes_matched_{train,val}`` (evaluator_type ``coco_ap50``, thing_classes
``["person"]``); ``coco_bikecar_{train,val}``, ``siim_acr_{train,val,test}``,
``cityscapes_person_crops_{320x192,160x96}_bg{0,5,10}_{train,val}`` (evaluator_type
``sem_seg``, ``stuff_classes``, ``ignore_label`` 255; each dict carries
``foreground_classes``). Loading a name whose files are missing raises FileNotFoundError
naming the path and the command that builds it.
"""
import os
from functools import partial

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json

from ..builders import cityscapes_person_crops as crops
from ..builders import coco_bikecar, coco_person, siim_acr
from ..json_io import read_json
from ...utils.panoptic_conventions import IGNORE_LABEL


def _require(path, hint):
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found; {hint}")


def _build_hint(tool, root):
    return f"build it with: python tools/{tool} --root {root}"


def _load_coco(json_file, image_root, name, tool, root):
    _require(json_file, _build_hint(tool, root))
    _require(image_root, "place the COCO images there (detectron2's layout)")
    return load_coco_json(json_file, image_root, name)


def load_sem_seg_records(json_file, image_root, mask_root):
    """Dataset dicts from a builder's record list, with paths made absolute."""
    return [
        {**r,
         "file_name": os.path.join(image_root, r["file_name"]),
         "sem_seg_file_name": os.path.join(mask_root, r["sem_seg_file_name"])}
        for r in read_json(json_file)
    ]


def _load_sem_seg(json_file, image_root, mask_root, tool, root):
    _require(json_file, _build_hint(tool, root))
    return load_sem_seg_records(json_file, image_root, mask_root)


def _register(name, loader, **metadata):
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    DatasetCatalog.register(name, loader)
    MetadataCatalog.get(name).set(**metadata)


def _register_coco_person(root):
    tool = "build_coco_person.py"
    for split in coco_person.SPLITS:
        image_root = os.path.join(root, "coco", f"{split}2017")
        for name, json_file in (
            (f"coco_person_{split}", coco_person.person_json(root, split)),
            (f"coco_isb_shapes_{split}", coco_person.isb_json(root, split)),
            (f"coco_isb_shapes_matched_{split}", coco_person.isb_json(root, split, True)),
        ):
            _register(
                name, partial(_load_coco, json_file, image_root, name, tool, root),
                json_file=json_file, image_root=image_root, thing_classes=["person"],
                evaluator_type="coco_ap50",  # Kolhatkar (2020) §5.1: AP/AR at IoU 0.5
            )


def _sem_seg_metadata(classes, image_root, mask_root, evaluator_type="empty_images"):
    """Empty-image-dominated sets use Andrade's (2021) metrics (fg IoU on non-empty images,
    image-level balanced accuracy); the person crops use plain IoU ("sem_seg")."""
    return dict(stuff_classes=list(classes), ignore_label=IGNORE_LABEL,
                evaluator_type=evaluator_type, image_root=image_root, sem_seg_root=mask_root)


def _register_coco_bikecar(root):
    for split in coco_bikecar.SPLITS:
        json_file = coco_bikecar.records_json(root, split)
        image_root = os.path.join(root, "coco", f"{split}2017")
        mask_root = coco_bikecar.sem_seg_dir(root, split)
        _register(
            f"coco_bikecar_{split}",
            partial(_load_sem_seg, json_file, image_root, mask_root, "build_coco_bikecar.py",
                    root),
            **_sem_seg_metadata(coco_bikecar.CLASSES, image_root, mask_root),
        )


def _register_siim_acr(root):
    image_root = os.path.join(siim_acr.dataset_dir(root), "images")
    mask_root = os.path.join(siim_acr.dataset_dir(root), "masks")
    for split in siim_acr.SPLITS:
        json_file = siim_acr.records_json(root, split)
        _register(
            f"siim_acr_{split}",
            partial(_load_sem_seg, json_file, image_root, mask_root, "build_siim_acr.py", root),
            **_sem_seg_metadata(siim_acr.CLASSES, image_root, mask_root),
        )


def _register_cityscapes_person_crops(root):
    for size in crops.SIZES:
        for bg in crops.BACKGROUNDS:
            for split in crops.SPLITS:
                split_dir = os.path.join(crops.variant_dir(root, size, bg), split)
                image_root = os.path.join(split_dir, "images")
                mask_root = os.path.join(split_dir, "masks")
                json_file = crops.records_json(root, size, bg, split)
                _register(
                    f"cityscapes_person_crops_{crops.variant_name(size, bg)}_{split}",
                    partial(_load_sem_seg, json_file, image_root, mask_root,
                            "build_cityscapes_person_crops.py", root),
                    **_sem_seg_metadata(crops.CLASSES, image_root, mask_root, "sem_seg"),
                )


def register_all(root):
    """(Re-)register every dataset of this module with files under ``root``."""
    _register_coco_person(root)
    _register_coco_bikecar(root)
    _register_siim_acr(root)
    _register_cityscapes_person_crops(root)


register_all(os.getenv("DETECTRON2_DATASETS", "datasets"))
