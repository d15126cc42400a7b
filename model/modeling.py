"""The earshot model: one encoder, a sentiment head and a pain-point head, one forward pass.

Example:
    >>> from model import EarshotModel
    >>> model = EarshotModel.from_pretrained()          # the shipped default model
    >>> model.predict(["My bag never arrived"])[0].pain_points[0].label
    'Lost Luggage'
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from .base import DEFAULT_MODEL_DIR, resolve_base_model
from .batching import PASS_COST_TOKENS, length_chunks
from .config import CONFIG_KEY, EarshotConfig
from .device import inference_dtype, resolve_device
from .packing import pack, position_offset

logger = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


@dataclass(frozen=True)
class PainPoint:
    """One pain point found in a text, with the model's confidence."""

    label: str
    score: float


@dataclass(frozen=True)
class Prediction:
    """Everything the model says about one text.

    ``sentiment`` is ``None`` only for a model trained without sentiment labels (e.g. Banking77).
    ``pain_points`` lists the labels whose score reached their threshold, highest score first.
    """

    sentiment: str | None
    sentiment_score: float | None
    sentiment_scores: dict[str, float]
    pain_points: list[PainPoint]
    pain_point_scores: dict[str, float]
    truncated: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "sentiment": self.sentiment,
            "sentiment_score": self.sentiment_score,
            "sentiment_scores": self.sentiment_scores,
            "pain_points": [{"label": p.label, "score": p.score} for p in self.pain_points],
            "pain_point_scores": self.pain_point_scores,
            "truncated": self.truncated,
        }


@dataclass(frozen=True)
class Probabilities:
    """Raw head outputs for ``n`` texts, in input order.

    ``sentiment`` is ``(n, len(sentiment_labels))`` softmax probabilities, ``pain_points`` is
    ``(n, len(pain_point_labels))`` independent sigmoid probabilities, ``truncated`` is ``(n,)``.
    """

    sentiment: np.ndarray
    pain_points: np.ndarray
    truncated: np.ndarray


@dataclass
class Encoded:
    """Token ids of texts cut to the model's length, before padding."""

    input_ids: list[list[int]]
    truncated: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


class EarshotModel(nn.Module):
    """A multi-task feedback classifier.

    Build a new one for training with :meth:`from_base`, load a trained one with
    :meth:`from_pretrained`; :meth:`predict` is the one inference path that the CLI, the batch
    scorer, the Ray job and the HTTP service all call.
    """

    def __init__(self, encoder: nn.Module, tokenizer: PreTrainedTokenizerBase, config: EarshotConfig,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.config = config
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.sentiment_head = nn.Linear(hidden, len(config.sentiment_labels)) if config.sentiment_labels else None
        self.pain_point_head = nn.Linear(hidden, len(config.pain_point_labels)) if config.pain_point_labels else None
        self._thresholds = np.array([config.thresholds[label] for label in config.pain_point_labels],
                                    dtype=np.float32)
        self.backend = "torch"
        self._runner: Any = None  # an ONNX Runtime session when backend is not torch
        # Where positions start when several texts share a row (model/packing.py); None: padded passes.
        self.position_offset = position_offset(encoder)

    # ----------------------------------------------------------------------------------- building
    @classmethod
    def from_base(cls, base_model: str, sentiment_labels: Sequence[str], pain_point_labels: Sequence[str],
                  max_length: int = 128, **config_fields: Any) -> "EarshotModel":
        """A fresh model on a pretrained encoder (hub id or local folder), heads untrained.

        Example:
            >>> m = EarshotModel.from_base("sentence-transformers/all-MiniLM-L6-v2",
            ...                            ["negative", "positive"], ["late", "rude"])
        """
        location = resolve_base_model(base_model)
        encoder = AutoModel.from_pretrained(location)
        tokenizer = AutoTokenizer.from_pretrained(location)
        config = EarshotConfig(sentiment_labels=list(sentiment_labels), pain_point_labels=list(pain_point_labels),
                               base_model=base_model, max_length=max_length, **config_fields)
        return cls(encoder, tokenizer, config)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str] | None = None,
                        device: str | torch.device | None = None, backend: str = "torch") -> "EarshotModel":
        """Load a trained model folder (default: the shipped airline model) onto a device.

        Weights are read from safetensors only: a pickle file is never loaded, since unpickling
        a user-supplied file runs arbitrary code. ``backend`` "onnx" or "onnx-int8" runs the network
        in ONNX Runtime on the CPU, from an export cached in the folder (built when missing or stale).
        "auto" takes "onnx-int8" on the CPU and "torch" on an accelerator;
        when the int8 export is missing and cannot be written, it says why and falls back to torch.

        Example:
            >>> model = EarshotModel.from_pretrained(device="cpu")
        """
        from .onnx_backend import BACKENDS, ExportError, load_runner

        if backend not in (*BACKENDS, "auto"):
            raise ValueError(f"unknown backend {backend!r}; use one of {[*BACKENDS, 'auto']}")
        folder = Path(path) if path is not None else DEFAULT_MODEL_DIR
        config_file, weights_file = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        if not config_file.is_file():
            raise FileNotFoundError(f"{folder} is not a model folder: it has no {CONFIG_NAME}")
        raw = json.loads(config_file.read_text(encoding="utf-8"))
        if CONFIG_KEY not in raw:
            raise ValueError(f"{config_file} has no {CONFIG_KEY!r} section: it is not an earshot model "
                             "(train one with `earshot train`)")
        if not weights_file.is_file():
            pickles = sorted(p.name for p in folder.glob("*.bin")) + sorted(p.name for p in folder.glob("*.pt"))
            hint = f" (found {pickles}: pickle files are not loaded, convert them to safetensors)" if pickles else ""
            raise FileNotFoundError(f"{folder} has no {WEIGHTS_NAME}{hint}")
        config = EarshotConfig.from_dict(raw[CONFIG_KEY])
        encoder = AutoModel.from_config(AutoConfig.from_pretrained(folder))
        model = cls(encoder, AutoTokenizer.from_pretrained(folder), config)
        state = {name: tensor.float() for name, tensor in load_file(weights_file).items()}
        model.load_state_dict(state, strict=True)
        automatic = backend == "auto"
        if automatic:
            # int8 ONNX on the CPU (as accurate as fp32 on the airline data, 1.3x faster, per-token scales so
            # batch-independent: model/int8.py), torch elsewhere.
            backend, device = ("onnx-int8", "cpu") if resolve_device(device).type == "cpu" else ("torch", device)
        if backend == "torch":
            return model.to_device(device)
        if device not in (None, "auto", "cpu"):
            raise ValueError(f"backend {backend!r} runs on the CPU; use backend 'torch' for device {device!r}")
        model.to_device("cpu")
        try:
            model._runner = load_runner(model, folder, backend)
        except ExportError as error:
            if not automatic:
                raise
            logger.warning("backend auto: %s; %s is read-only, so serving with torch (slower)", error, folder)
            return model
        model.backend = backend
        return model

    def save_pretrained(self, path: str | os.PathLike[str], dtype: torch.dtype | None = None) -> None:
        """Write config, safetensors weights and tokenizer into ``path``.

        ``dtype=torch.float16`` halves the file (used for the model shipped in git); loading
        always restores float32 on CPU.

        Example:
            >>> model.save_pretrained("runs/my-model")
        """
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        state = {name: (t.to(dtype) if dtype is not None and t.is_floating_point() else t).detach().cpu().contiguous()
                 for name, t in self.state_dict().items()}
        with atomic_path(folder / WEIGHTS_NAME) as tmp:
            save_file(state, tmp, metadata={"format": "pt"})
        config = self.encoder.config.to_dict()
        config[CONFIG_KEY] = self.config.to_dict()
        with atomic_path(folder / CONFIG_NAME) as tmp:
            Path(tmp).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        self.tokenizer.save_pretrained(folder)

    def to_device(self, device: str | torch.device | None = None) -> "EarshotModel":
        """Move to ``device`` (auto when None), in half precision on accelerators."""
        target = resolve_device(device)
        self.to(device=target, dtype=inference_dtype(target))
        return self

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def sentiment_labels(self) -> list[str]:
        return self.config.sentiment_labels

    @property
    def pain_point_labels(self) -> list[str]:
        return self.config.pain_point_labels

    def set_thresholds(self, thresholds: dict[str, float]) -> None:
        """Replace the pain-point thresholds (validated like the config)."""
        self.config = EarshotConfig.from_dict({**self.config.to_dict(), "thresholds": dict(thresholds)})
        self._thresholds = np.array([self.config.thresholds[label] for label in self.pain_point_labels],
                                    dtype=np.float32)

    # ------------------------------------------------------------------------------------ forward
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of both heads from one encoder pass: ``(sentiment, pain_points)``.

        A head the model does not have gives a ``(batch, 0)`` tensor.
        """
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.config.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return self._heads(pooled)

    def forward_packed(self, input_ids: torch.Tensor, position_ids: torch.Tensor, attention_mask: torch.Tensor,
                       pooling: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of both heads for texts packed several to a row (``model.packing.PackedBatch``).

        ``attention_mask`` is additive and block-diagonal, ``pooling`` holds each text's weights over
        all ``rows * width`` cells, so each text is pooled from its own tokens only.
        """
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              position_ids=position_ids).last_hidden_state
        return self._heads(pooling @ hidden.reshape(-1, hidden.shape[-1]))

    def _heads(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.dropout(pooled)
        empty = pooled.new_zeros((pooled.shape[0], 0))
        sentiment = self.sentiment_head(pooled) if self.sentiment_head is not None else empty
        pain_points = self.pain_point_head(pooled) if self.pain_point_head is not None else empty
        return sentiment, pain_points

    # ---------------------------------------------------------------------------------- tokenising
    def encode(self, texts: Sequence[str]) -> Encoded:
        """Token ids for each text, cut to ``max_length``, and which ones were cut.

        Tokenising one token past the limit tells whether a text was cut without tokenising the
        whole of a long text.
        """
        limit = self.config.max_length
        ids = self.tokenizer(list(texts), truncation=True, max_length=limit + 1,
                             return_attention_mask=False, return_token_type_ids=False)["input_ids"]
        truncated = np.fromiter((len(row) > limit for row in ids), dtype=bool, count=len(ids))
        if truncated.any():
            sep = ids[int(np.argmax(truncated))][-1]
            ids = [row[: limit - 1] + [sep] if cut else row for row, cut in zip(ids, truncated)]
        return Encoded(input_ids=ids, truncated=truncated)

    def collate(self, rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Pad token-id rows to the longest of them: ``(input_ids, attention_mask)``."""
        width = max(len(row) for row in rows)
        pad_id = self.tokenizer.pad_token_id or 0
        input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
        attention = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = row
            attention[i, : len(row)] = 1
        return torch.from_numpy(input_ids), torch.from_numpy(attention)

    # ---------------------------------------------------------------------------------- inference
    def predict_proba(self, texts: Sequence[str], batch_size: int | None = None) -> Probabilities:
        """Head probabilities for any number of texts, in input order.

        Texts are sorted by length and batched internally (at most ``batch_size`` a pass), so callers
        can pass any list. BERT and MPNet encoders lay several texts end to end in each row of a pass
        (``model.packing``); other encoders pad, with passes cut where padding would cost more than a
        pass on CPU (``model.batching``). A text's scores do not depend on the texts beside it
        (beyond float rounding).

        Example:
            >>> probs = model.predict_proba(["late again", "thanks!"])
            >>> probs.sentiment.shape
            (2, 3)
        """
        texts = check_texts(texts)
        n_sent, n_pain = len(self.sentiment_labels), len(self.pain_point_labels)
        sentiment = np.zeros((len(texts), n_sent), dtype=np.float32)
        pain_points = np.zeros((len(texts), n_pain), dtype=np.float32)
        if not texts:
            return Probabilities(sentiment, pain_points, np.zeros(0, dtype=bool))
        encoded = self.encode(texts)
        size = batch_size or (256 if self.device.type == "cuda" else 64)
        if size < 1:
            raise ValueError(f"batch_size must be at least 1, got {size}")
        # Longest first: a batch that does not fit in memory fails at once, not at the end.
        order = sorted(range(len(texts)), key=lambda i: len(encoded.input_ids[i]), reverse=True)
        if self.position_offset is not None:  # packed rows waste almost nothing on padding
            passes = [(start, min(start + size, len(order))) for start in range(0, len(order), size)]
        else:
            passes = length_chunks([len(encoded.input_ids[i]) for i in order], size,
                                   PASS_COST_TOKENS.get("cpu" if self._runner is not None else self.device.type))
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                for start, stop in passes:
                    chunk = order[start:stop]
                    sent_logits, pain_logits = self._pass_logits([encoded.input_ids[i] for i in chunk])
                    sentiment[chunk] = torch.softmax(sent_logits.float(), dim=-1).cpu().numpy()
                    pain_points[chunk] = torch.sigmoid(pain_logits.float()).cpu().numpy()
        finally:
            self.train(was_training)
        return Probabilities(sentiment, pain_points, encoded.truncated)

    def pass_inputs(self, token_rows: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
        """The named inputs of one forward pass over ``token_rows``: packed rows when the encoder
        packs (``model.packing``), else padded ``input_ids`` and ``attention_mask``. The ONNX export
        takes the same names."""
        if self.position_offset is not None:
            return pack(token_rows, self.tokenizer.pad_token_id or 0, self.position_offset, self.config.pooling).feed()
        input_ids, attention = self.collate(token_rows)
        return {"input_ids": input_ids.numpy(), "attention_mask": attention.numpy()}

    def _pass_logits(self, token_rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Both heads' logits for one forward pass over ``token_rows``, packed when the encoder allows."""
        feed = self.pass_inputs(token_rows)
        if self._runner is not None:
            return tuple(torch.from_numpy(logits) for logits in self._runner(feed))  # type: ignore[return-value]
        dtype = next(self.parameters()).dtype
        tensors = {name: torch.from_numpy(array).to(self.device) for name, array in feed.items()}
        if self.position_offset is None:
            return self(tensors["input_ids"], tensors["attention_mask"])
        return self.forward_packed(tensors["input_ids"], tensors["position_ids"],
                                   tensors["attention_mask"].to(dtype), tensors["pooling"].to(dtype))

    def predict(self, texts: Sequence[str], batch_size: int | None = None) -> list[Prediction]:
        """Typed predictions for any number of texts, in input order.

        Example:
            >>> [p.sentiment for p in model.predict(["thank you so much", "lost my bag"])]
            ['positive', 'negative']
        """
        return self.decide(self.predict_proba(texts, batch_size=batch_size))

    def decide(self, probabilities: Probabilities) -> list[Prediction]:
        """Turn probabilities into predictions: argmax sentiment, pain points at or over threshold."""
        sent_labels, pain_labels = self.sentiment_labels, self.pain_point_labels
        predictions = []
        for row, (sent, pain) in enumerate(zip(probabilities.sentiment, probabilities.pain_points)):
            sentiment_scores = {label: float(p) for label, p in zip(sent_labels, sent)}
            pain_scores = {label: float(p) for label, p in zip(pain_labels, pain)}
            best = int(np.argmax(sent)) if len(sent_labels) else None
            found = [PainPoint(pain_labels[i], float(pain[i])) for i in np.flatnonzero(pain >= self._thresholds)]
            found.sort(key=lambda p: p.score, reverse=True)
            predictions.append(Prediction(
                sentiment=sent_labels[best] if best is not None else None,
                sentiment_score=float(sent[best]) if best is not None else None,
                sentiment_scores=sentiment_scores,
                pain_points=found,
                pain_point_scores=pain_scores,
                truncated=bool(probabilities.truncated[row]),
            ))
        return predictions


def check_texts(texts: Iterable[Any]) -> list[str]:
    """The texts as a list, or a ValueError naming the first one that is not a non-empty string."""
    if isinstance(texts, str):
        raise TypeError("predict takes a list of texts, not a single string: wrap it as [text]")
    checked = list(texts)
    for index, text in enumerate(checked):
        if not isinstance(text, str):
            raise ValueError(f"text {index} is {type(text).__name__}, not a string")
        if not text.strip():
            raise ValueError(f"text {index} is empty or only whitespace")
    return checked


class atomic_path:
    """A temporary path beside ``target`` that replaces it only when the block succeeds."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __enter__(self) -> str:
        fd, self.tmp = tempfile.mkstemp(dir=self.target.parent, prefix=f".{self.target.name}.", suffix=".tmp")
        os.close(fd)
        return self.tmp

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            # mkstemp and safetensors both create 0600 files; a model folder is meant to be read by others.
            os.chmod(self.tmp, 0o644)
            os.replace(self.tmp, self.target)
        elif os.path.exists(self.tmp):
            os.unlink(self.tmp)
