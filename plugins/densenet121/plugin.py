"""Hook for the ``densenet121`` classifier (the network module is imported only when used)."""

from synthaug import hookimpl


@hookimpl
def register_classifiers(register):
    register("densenet121", "synthaug_plugins.densenet121.network:DenseNet121",
             summary="ImageNet DenseNet-121 (2.9 GFLOPs at 224px), scratch or torchvision-weights transfer")
