"""Earshot's model: one encoder and any number of heads (``single``, ``multi`` or a registered kind), one
forward pass."""

from .base import DEFAULT_BASE_MODEL, DEFAULT_MODEL_DIR, NAMES_MODEL_DIR, resolve_base_model
from .config import EarshotConfig
from .device import resolve_device
from .heads import MULTI, SINGLE, Head
from .modeling import (EarshotModel, HeadPrediction, LabelScore, ModelFront, Prediction, Probabilities, check_texts,
                       read_config, version_id)

__all__ = [
    "DEFAULT_BASE_MODEL", "DEFAULT_MODEL_DIR", "EarshotConfig", "EarshotModel", "Head", "HeadPrediction",
    "LabelScore", "ModelFront", "MULTI", "NAMES_MODEL_DIR", "Prediction", "Probabilities", "SINGLE", "check_texts", "read_config",
    "resolve_base_model", "resolve_device", "version_id",
]
