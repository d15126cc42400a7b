"""The earshot model: one encoder, any number of heads, one forward pass for all of them.

Example:
    >>> from earshot.model import EarshotModel
    >>> model = EarshotModel.from_pretrained()          # the shipped default model
    >>> model.predict(["The parcel arrived crushed and the vase inside was broken"])[0]["pain_points"].label
    'Lost or damaged item'
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from earshot.files import atomic_path, sha256

from .base import DEFAULT_MODEL_DIR, resolve_base_model
from .batching import PASS_COST_TOKENS, length_chunks
from .config import CONFIG_KEY, EarshotConfig, migrate_state
from .device import inference_dtype, resolve_device
from .heads import Head, HeadKind, head_kind, head_layer
from .onnx_backend import ExportError
from .packing import pack, position_offset
from .runners import AUTO, CompiledRunner, Runner, TorchRunner, choose_backend

logger = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
EMBEDDING = "embedding"


@dataclass(frozen=True)
class LabelScore:
    """One label with the model's confidence in it."""

    label: str
    score: float


@dataclass(frozen=True)
class HeadPrediction:
    """What one head says about one text.

    ``labels``: for a ``single`` head, the one best label; for a ``multi`` head, the labels whose
    score reached their threshold, highest first (possibly none). ``scores`` has every label.
    """

    kind: str
    labels: list[LabelScore]
    scores: dict[str, float]

    @property
    def behaviour(self) -> HeadKind:
        """The head's kind (``model.heads.HeadKind``)."""
        return head_kind(self.kind)

    @property
    def label(self) -> str | None:
        """The best label (single), or the best label over its threshold (multi); None if none."""
        return self.labels[0].label if self.labels else None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "labels": [{"label": p.label, "score": p.score} for p in self.labels],
                "scores": self.scores}


@dataclass(frozen=True)
class Prediction:
    """Everything the model says about one text: one ``HeadPrediction`` per head, by name.

    ``vector``: the text's pooled encoder vector from the same pass (the review queue uses it to tell
    near-duplicates apart); not part of the answer's dictionary.
    """

    heads: dict[str, HeadPrediction]
    truncated: bool
    vector: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __getitem__(self, head: str) -> HeadPrediction:
        return self.heads[head]

    def to_dict(self) -> dict[str, Any]:
        return {"heads": {name: head.to_dict() for name, head in self.heads.items()}, "truncated": self.truncated}


@dataclass(frozen=True)
class Probabilities:
    """Each head's probabilities for ``n`` texts, in input order: ``scores[head]`` is
    ``(n, labels)``, softmax for single heads, independent sigmoids for multi heads; ``embeddings``
    (when given) the texts' pooled vectors ``(n, hidden)`` from the same pass."""

    scores: dict[str, np.ndarray]
    truncated: np.ndarray
    embeddings: np.ndarray | None = None

    def __getitem__(self, head: str) -> np.ndarray:
        return self.scores[head]


@dataclass
class Encoded:
    """Token ids of texts cut to the model's length, before padding."""

    input_ids: list[list[int]]
    truncated: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


class TextSide:
    """What a model does before and after its network: tokenize texts, turn logits into
    probabilities and decisions. Needs ``self.tokenizer``, ``self.config`` and ``self.version``, no
    weights, so a process that never runs the network (the API workers of a split service) has the
    same answers as one that does."""

    tokenizer: PreTrainedTokenizerBase
    config: EarshotConfig
    version: str | None

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

    def to_probabilities(self, outputs: dict[str, np.ndarray], truncated: np.ndarray) -> Probabilities:
        """Raw outputs (``embedding`` and each head's logits, as :meth:`EarshotModel.run` gives them)
        as probabilities."""
        return Probabilities({h.name: h.behaviour.probabilities(outputs[h.name]) for h in self.config.heads}, truncated,
                             outputs.get(EMBEDDING))

    def decide(self, probabilities: Probabilities) -> list[Prediction]:
        """Turn probabilities into predictions: the best label of a single head, the labels at or
        over threshold of a multi head."""
        decided = {head.name: decide_head(head, probabilities[head.name]) for head in self.config.heads}
        vectors = probabilities.embeddings
        return [Prediction({name: answers[row] for name, answers in decided.items()}, bool(truncated),
                           vectors[row] if vectors is not None else None)
                for row, truncated in enumerate(probabilities.truncated)]


class ModelFront(TextSide):
    """A model folder's tokenizer, heads and version without its weights: tokenizes and decides for
    a network that runs elsewhere (``service.model_worker``).

    Example:
        >>> front = ModelFront.from_pretrained()
        >>> front.encode(["late again"]).input_ids[0][:1]
        [101]
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, config: EarshotConfig, version: str | None = None) -> None:
        self.tokenizer = tokenizer
        self.config = config
        self.version = version

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str] | None = None) -> "ModelFront":
        """The front of a saved model folder (default: the shipped model); its weights are not read."""
        folder = Path(path) if path is not None else DEFAULT_MODEL_DIR
        config = read_config(folder)
        return cls(AutoTokenizer.from_pretrained(folder), config, version_id(folder))


class EarshotModel(nn.Module, TextSide):
    """A multi-head feedback classifier.

    Build a new one for training with :meth:`from_base`, load a trained one with
    :meth:`from_pretrained`; :meth:`predict` is the one inference path that the CLI, the batch
    scorer, the Ray job and the HTTP service all call. It runs through the runner chosen at load
    (``self.runner``: torch, onnx or onnx-int8) and never asks which one it has.
    """

    def __init__(self, encoder: nn.Module, tokenizer: PreTrainedTokenizerBase, config: EarshotConfig,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.config = config
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({head.name: head_layer(head, hidden) for head in config.heads})
        self.runner: Runner = TorchRunner(self)
        self.version: str | None = None  # the saved folder's id (``version_id``); None until saved or loaded
        # Where positions start when several texts share a row (model/packing.py); None: padded passes.
        self.position_offset = position_offset(encoder)

    # ----------------------------------------------------------------------------------- building
    @classmethod
    def from_base(cls, base_model: str, heads: Sequence[Head], max_length: int = 128,
                  **config_fields: Any) -> "EarshotModel":
        """A fresh model on a pretrained encoder (hub id or local folder, or an earshot model folder whose
        encoder and tokenizer are taken), heads untrained.

        Example:
            >>> m = EarshotModel.from_base("sentence-transformers/all-MiniLM-L6-v2",
            ...                            [Head("sentiment", "single", ["negative", "positive"]),
            ...                             Head("pain_points", "multi", ["late", "rude"])])
        """
        if is_model_folder(base_model):  # another earshot model's encoder (e.g. the general default's)
            source = cls._read(Path(base_model))
            config = EarshotConfig(heads=list(heads), base_model=f"{base_model} (earshot model {source.version})",
                                   max_length=max_length, pooling=source.config.pooling, **config_fields)
            return cls(source.encoder, source.tokenizer, config)
        location = resolve_base_model(base_model)
        encoder = AutoModel.from_pretrained(location)
        tokenizer = AutoTokenizer.from_pretrained(location)
        config = EarshotConfig(heads=list(heads), base_model=base_model, max_length=max_length, **config_fields)
        return cls(encoder, tokenizer, config)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str] | None = None,
                        device: str | torch.device | None = None, backend: str = "torch",
                        compiled: bool = False) -> "EarshotModel":
        """Load a trained model folder (default: the shipped general model) with the runner for ``backend``.

        Weights are read from safetensors only: a pickle file is never loaded, since unpickling
        a user-supplied file runs arbitrary code. ``backend`` "onnx" or "onnx-int8" runs the network
        in ONNX Runtime on the CPU, from an export cached in the folder (built when missing or stale).
        "bf16" runs torch in bfloat16 on the CPU, for CPUs with AMX bfloat16 units (``bf16_matrix_units``),
        at the same labels. "auto" takes "bf16" on a CPU with those units, "onnx-int8" on other CPUs and
        "torch" on an accelerator (``model.runners``' registry); when the int8 export is missing and
        cannot be written, it says why and falls back to torch.

        ``compiled`` runs the torch backends (torch, bf16) through ``torch.compile``, compiled here at load
        (tens of seconds; needs a C++ compiler on the CPU), for long batch jobs (speeds in
        docs/experiments.md). Refused for the ONNX backends, including when ``auto`` chose one.

        Example:
            >>> model = EarshotModel.from_pretrained(device="cpu")
        """
        folder = Path(path) if path is not None else DEFAULT_MODEL_DIR
        model = cls._read(folder)
        automatic = backend == AUTO
        chosen, device = choose_backend(backend, device)
        if compiled and not chosen.compilable:
            which = f"backend auto chose {chosen.name!r} on this machine" if automatic else f"backend {chosen.name!r}"
            raise ValueError(f"compile works with the torch backends (torch, bf16), but {which}: "
                             "pass --backend torch or bf16 with it, or leave compile off")
        try:
            chosen.load(model, folder, device)
        except ExportError as error:
            if not automatic:
                raise
            logger.warning("backend auto: %s; %s is read-only, so serving with torch (slower)", error, folder)
        if compiled:
            model.compile_runner()
        return model

    @classmethod
    def _read(cls, folder: Path) -> "EarshotModel":
        """The model in ``folder`` on the CPU in float32, with its version id; format-1 folders migrated."""
        config = read_config(folder)
        weights_file = folder / WEIGHTS_NAME
        if not weights_file.is_file():
            pickles = sorted(p.name for p in folder.glob("*.bin")) + sorted(p.name for p in folder.glob("*.pt"))
            hint = f" (found {pickles}: pickle files are not loaded, convert them to safetensors)" if pickles else ""
            raise FileNotFoundError(f"{folder} has no {WEIGHTS_NAME}{hint}")
        encoder = AutoModel.from_config(AutoConfig.from_pretrained(folder))
        model = cls(encoder, AutoTokenizer.from_pretrained(folder), config)
        state = migrate_state({name: tensor.float() for name, tensor in load_file(weights_file).items()})
        model.load_state_dict(state, strict=True)
        model.version = version_id(folder)
        return model

    def save_pretrained(self, path: str | os.PathLike[str], dtype: torch.dtype | None = None) -> str:
        """Write config, safetensors weights and tokenizer into ``path``; returns the new version id.

        ``dtype=torch.float16`` halves the file (used for the model shipped in git); loading
        always restores float32 on CPU.

        Example:
            >>> model.save_pretrained("runs/my-model")
            '3f2a9c0d1b7e4a56'
        """
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        state = {name: (t.to(dtype) if dtype is not None and t.is_floating_point() else t).detach().cpu().contiguous()
                 for name, t in self.state_dict().items()}
        with atomic_path(folder / WEIGHTS_NAME) as tmp:
            save_file(state, str(tmp), metadata={"format": "pt"})
        config = self.encoder.config.to_dict()
        config[CONFIG_KEY] = self.config.to_dict()
        with atomic_path(folder / CONFIG_NAME) as tmp:
            tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        self.tokenizer.save_pretrained(folder)
        self.version = version_id(folder)
        return self.version

    def to_device(self, device: str | torch.device | None = None) -> "EarshotModel":
        """Move to ``device`` (auto when None), in half precision on accelerators."""
        target = resolve_device(device)
        self.to(device=target, dtype=inference_dtype(target))
        return self

    def compile_runner(self) -> None:
        """Run the torch runner's forward through ``torch.compile`` (``CompiledRunner``), compiled now.

        Example:
            >>> model = EarshotModel.from_pretrained(backend="bf16")
            >>> model.compile_runner()   # tens of seconds; later passes are faster
        """
        if not isinstance(self.runner, TorchRunner) or isinstance(self.runner, CompiledRunner):
            raise ValueError(f"compile works with the uncompiled torch backends (torch, bf16), not {self.backend!r}")
        self.runner = CompiledRunner(self, self.runner.name)
        # Texts of about 4 to 40 tokens: a pass whose sizes (texts, rows, cells) all differ and pass 1,
        # so the one graph compiled here serves every later pass (see CompiledRunner).
        try:
            self.run(["warm up " * words for words in (19, 14, 9, 4, 1)])
        except Exception as error:  # inductor's failures come as many types; the cause is kept
            raise RuntimeError(f"torch.compile could not compile this model ({type(error).__name__}: {error}); "
                               "on the CPU it needs a C++ compiler (gcc or clang); leave compile off") from error

    @property
    def device(self) -> torch.device:
        return self.runner.device

    @property
    def backend(self) -> str:
        return self.runner.name

    def set_thresholds(self, thresholds: dict[str, dict[str, float]]) -> None:
        """Set thresholds of multi heads, ``{head: {label: threshold}}``; labels not named keep theirs.

        Validated like the config: an unknown head or label, or a value outside (0, 1), is refused.
        """
        with_thresholds = {h.name for h in self.config.heads if h.behaviour.thresholded}
        unknown = sorted(set(thresholds) - with_thresholds)
        if unknown:
            raise ValueError(f"thresholds given for {unknown}, which are not heads with thresholds of this model: "
                             f"{sorted(with_thresholds)}")
        self.config.heads = [replace(h, thresholds={**h.thresholds, **thresholds[h.name]})
                             if h.name in thresholds else h for h in self.config.heads]

    # ------------------------------------------------------------------------------------ forward
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """The pooled ``embedding`` and every head's logits (by head name) from one encoder pass."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.pooled_outputs(hidden, attention_mask)

    def pooled_outputs(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """:meth:`forward`'s outputs from the encoder's last hidden states of padded rows."""
        if self.config.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return self._outputs(pooled)

    def forward_packed(self, input_ids: torch.Tensor, position_ids: torch.Tensor, attention_mask: torch.Tensor,
                       pooling: torch.Tensor) -> dict[str, torch.Tensor]:
        """Like :meth:`forward` for texts packed several to a row (``model.packing.PackedBatch``).

        ``attention_mask`` is additive and block-diagonal, ``pooling`` holds each text's weights over
        all ``rows * width`` cells, so each text is pooled from its own tokens only.
        """
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              position_ids=position_ids).last_hidden_state
        return self.packed_outputs(hidden, pooling)

    def packed_outputs(self, hidden: torch.Tensor, pooling: torch.Tensor) -> dict[str, torch.Tensor]:
        """:meth:`forward_packed`'s outputs from the encoder's last hidden states of packed rows."""
        return self._outputs(pooling @ hidden.reshape(-1, hidden.shape[-1]))

    def forward_rows(self, token_rows: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
        """:meth:`forward` over token-id rows, as training calls it: packed rows where the encoder
        packs (on the CPU faster per training step than padded rows of short texts),
        padded ones elsewhere. Differentiable; dropout follows ``self.training``."""
        feed = {name: torch.from_numpy(value).to(self.device) for name, value in self.pass_inputs(token_rows).items()}
        if self.position_offset is not None:
            return self.forward_packed(**feed)
        return self(**feed)

    def _outputs(self, pooled: torch.Tensor) -> dict[str, torch.Tensor]:
        dropped = self.dropout(pooled)
        return {EMBEDDING: pooled, **{name: head(dropped) for name, head in self.heads.items()}}

    # ---------------------------------------------------------------------------------- tokenising
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

    def pass_inputs(self, token_rows: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
        """The named inputs of one forward pass over ``token_rows``: packed rows when the encoder
        packs (``model.packing``), else padded ``input_ids`` and ``attention_mask``. Every runner
        and the ONNX export take the same names."""
        if self.position_offset is not None:
            return pack(token_rows, self.tokenizer.pad_token_id or 0, self.position_offset, self.config.pooling).feed()
        input_ids, attention = self.collate(token_rows)
        return {"input_ids": input_ids.numpy(), "attention_mask": attention.numpy()}

    # ---------------------------------------------------------------------------------- inference
    def run(self, texts: Sequence[str], batch_size: int | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Raw outputs for any number of texts in input order: ``({"embedding": (n, hidden),
        head: (n, labels) logits, ...}, truncated)``; see :meth:`run_tokens`."""
        texts = check_texts(texts)
        encoded = self.encode(texts) if texts else Encoded(input_ids=[])
        return self.run_tokens(encoded.input_ids, batch_size=batch_size), encoded.truncated

    def run_tokens(self, input_ids: Sequence[Sequence[int]], batch_size: int | None = None) -> dict[str, np.ndarray]:
        """Raw outputs for token-id rows (from :meth:`encode`), in input order.

        Rows are sorted by length and batched internally (at most ``batch_size`` a pass). BERT and
        MPNet encoders lay several texts end to end in each row of a pass (``model.packing``); other
        encoders pad, with passes cut where padding would cost more than a pass on CPU
        (``model.batching``). A text's outputs do not depend on the texts beside it (beyond float
        rounding).
        """
        hidden = self.encoder.config.hidden_size
        outputs = {EMBEDDING: np.zeros((len(input_ids), hidden), dtype=np.float32),
                   **{h.name: np.zeros((len(input_ids), len(h.labels)), dtype=np.float32) for h in self.config.heads}}
        if not input_ids:
            return outputs
        size = batch_size or (256 if self.device.type == "cuda" else 64)
        if size < 1:
            raise ValueError(f"batch_size must be at least 1, got {size}")
        # Longest first: a batch that does not fit in memory fails at once, not at the end.
        order = sorted(range(len(input_ids)), key=lambda i: len(input_ids[i]), reverse=True)
        if self.position_offset is not None:  # packed rows waste almost nothing on padding
            passes = [(start, min(start + size, len(order))) for start in range(0, len(order), size)]
        else:
            passes = length_chunks([len(input_ids[i]) for i in order], size, PASS_COST_TOKENS.get(self.device.type))
        was_training = self.training
        self.eval()
        try:
            for start, stop in passes:
                chunk = order[start:stop]
                for name, values in self.runner(self.pass_inputs([input_ids[i] for i in chunk])).items():
                    outputs[name][chunk] = values
        finally:
            self.train(was_training)
        return outputs

    def predict_proba(self, texts: Sequence[str], batch_size: int | None = None) -> Probabilities:
        """Every head's probabilities for any number of texts, in input order (see :meth:`run`).

        Example:
            >>> probs = model.predict_proba(["late again", "thanks!"])
            >>> probs["sentiment"].shape
            (2, 3)
        """
        return self.to_probabilities(*self.run(texts, batch_size=batch_size))

    def embed(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """The pooled encoder vector of each text, ``(n, hidden)``, from the same pass as the heads."""
        return self.run(texts, batch_size=batch_size)[0][EMBEDDING]

    def predict(self, texts: Sequence[str], batch_size: int | None = None) -> list[Prediction]:
        """Typed predictions for any number of texts, in input order.

        Example:
            >>> [p["sentiment"].label for p in model.predict(["thank you so much", "lost my bag"])]
            ['positive', 'negative']
        """
        return self.decide(self.predict_proba(texts, batch_size=batch_size))


def decide_head(head: Head, scores: np.ndarray) -> list[HeadPrediction]:
    """One ``HeadPrediction`` per row of ``scores`` (rows x labels), as the head's kind decides."""
    return [HeadPrediction(head.kind, [LabelScore(label, score) for label, score in chosen],
                           {label: float(p) for label, p in zip(head.labels, row)})
            for chosen, row in zip(head.behaviour.decide(head, scores), scores)]


def read_config(folder: str | os.PathLike[str] | None = None) -> EarshotConfig:
    """A model folder's earshot config alone (no weights read): labels, heads, provenance.

    Example:
        >>> [h.name for h in read_config().heads]
        ['sentiment', 'pain_points']
    """
    folder = Path(folder) if folder is not None else DEFAULT_MODEL_DIR
    config_file = folder / CONFIG_NAME
    if not config_file.is_file():
        raise FileNotFoundError(f"{folder} is not a model folder: it has no {CONFIG_NAME}")
    raw = json.loads(config_file.read_text(encoding="utf-8"))
    if CONFIG_KEY not in raw:
        raise ValueError(f"{config_file} has no {CONFIG_KEY!r} section: it is not an earshot model "
                         "(train one with `earshot train`)")
    return EarshotConfig.from_dict(raw[CONFIG_KEY])


def is_model_folder(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` holds an earshot model (a config.json with the earshot section), as opposed to
    a bare encoder's folder or a hub id.

    Example:
        >>> is_model_folder(DEFAULT_MODEL_DIR), is_model_folder("sentence-transformers/all-MiniLM-L6-v2")
        (True, False)
    """
    config_file = Path(folder) / CONFIG_NAME
    return config_file.is_file() and CONFIG_KEY in json.loads(config_file.read_text(encoding="utf-8"))


def encoder_layer_count(folder: str | os.PathLike[str]) -> int:
    """How many transformer layers the encoder saved in ``folder`` has (its config's ``num_hidden_layers``).

    Example:
        >>> encoder_layer_count(DEFAULT_MODEL_DIR)
        6
    """
    from transformers import AutoConfig

    return int(AutoConfig.from_pretrained(str(folder)).num_hidden_layers)


def version_id(folder: str | os.PathLike[str]) -> str:
    """The id of the model saved in ``folder``: 16 hex digits of the SHA-256 of its weights and its
    configuration (the human ``label`` left out, so naming a version does not change it).

    Two folders with the same weights and config have the same id; retraining gives a new one.
    """
    folder = Path(folder)
    config = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
    config.get(CONFIG_KEY, {}).pop("label", None)
    return sha256(folder / WEIGHTS_NAME, json.dumps(config, sort_keys=True))[:16]


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
