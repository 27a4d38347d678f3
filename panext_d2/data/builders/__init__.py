"""Builders of the theses' datasets from the public originals under $DETECTRON2_DATASETS.

One module per dataset (``tools/build_*.py`` are their command lines); ``cells`` holds the
encompassing-box math shared with SSD-ISB, ``common`` JSON, progress and statistics helpers.
"""
