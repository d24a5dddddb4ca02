"""``resnet50``: the ImageNet ResNet-50 (He et al. 2016; torchvision's layout) as a synthaug classifier."""
