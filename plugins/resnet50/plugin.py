"""Hook for the ``resnet50`` classifier (the network module is imported only when used)."""

from synthaug import hookimpl


@hookimpl
def register_classifiers(register):
    register("resnet50", "synthaug_plugins.resnet50.network:ResNet50",
             summary="ImageNet ResNet-50 (4.1 GFLOPs at 224px), scratch or torchvision-weights transfer")
