"""Label values shared by the data, the losses, pseudo labelling and the metrics (stdlib only).

``IGNORE_INDEX`` is the mask value of pixels that are not scored or trained on: VOC's object
boundaries, the padding of a crop, and pseudo-label pixels left unlabelled. It is a label, not a
colour; the 255 of an 8-bit pixel value is a different thing and is written as 255.
"""
from __future__ import annotations

IGNORE_INDEX = 255
"""The ignored label (boundary, padding, unlabelled pixel), as in VOC's ``SegmentationClass``."""
