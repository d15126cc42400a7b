"""Earshot's model: one encoder, a sentiment head and a multi-label pain-point head."""

from .base import DEFAULT_BASE_MODEL, DEFAULT_MODEL_DIR, resolve_base_model
from .config import EarshotConfig
from .device import resolve_device
from .modeling import EarshotModel, PainPoint, Prediction, Probabilities, check_texts

__all__ = [
    "DEFAULT_BASE_MODEL", "DEFAULT_MODEL_DIR", "EarshotConfig", "EarshotModel", "PainPoint", "Prediction",
    "Probabilities", "check_texts", "resolve_base_model", "resolve_device",
]
