"""Small classifiers shared by the methods; each has ``stages`` (nn.ModuleList) and ``head``."""
from .base import StagedClassifier, inference_rows
from .models import ARCHS, MLP, PreActBlock, PreActResNet, SmallCNN, build_model

__all__ = ["StagedClassifier", "inference_rows", "MLP", "SmallCNN", "PreActResNet", "PreActBlock", "build_model", "ARCHS"]
