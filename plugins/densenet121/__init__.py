"""``densenet121``: the ImageNet DenseNet-121 (Huang et al. 2017; torchvision's layout) as a synthaug classifier."""
