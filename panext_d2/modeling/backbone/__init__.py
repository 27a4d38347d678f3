from . import convnext, fpn  # noqa: F401  (registers the ConvNeXt / PaNeXt-e builders)
from . import mobilenet_v1  # noqa: F401  (registers build_mobilenet_v1_backbone)
from . import squeezenet  # noqa: F401  (registers build_squeezenet_backbone)
from . import resnet_fpn  # noqa: F401  (registers build_resnet_fpn_p2p7_backbone)
