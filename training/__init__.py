"""Fine-tuning earshot models on labelled feedback: data checks, the trainer and its config."""

from .config import TrainingConfig
from .data import ColumnMapping, DataError, Example, HeadColumn, LoadedData, read_examples, split_validation
from .trainer import Trainer, TrainingResult

__all__ = ["ColumnMapping", "DataError", "Example", "HeadColumn", "LoadedData", "Trainer", "TrainingConfig",
           "TrainingResult", "read_examples", "split_validation"]
