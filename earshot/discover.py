"""Themes nobody labelled: clusters of the scored rows that no label explains, with their keywords.

``earshot discover SCORED -o themes.json`` takes the rows of a file written by ``earshot score`` that
are negative and carry no label of ``--head`` (or every scored row, ``--all``), embeds their texts with
a sentence encoder, reduces the vectors (PCA), clusters them with scikit-learn's HDBSCAN (a theme is
a dense group; the rest is noise) and names each theme by class-based TF-IDF: the words frequent in
the theme and rare in the others (BERTopic's c-TF-IDF). Themes whose keywords and centres are near
each other merge. Each theme gets its size, its share of the negative rows, representative texts (the nearest
to its centre), its trend by ``--date-column``, the 0-based rows of the scored file it holds, the label
of the head its rows carry most (with ``--all``; the rows considered otherwise carry none) and, when at
least half of its rows carry it, that label as the one that already covers it.

Why not BERTopic itself: it brings UMAP, numba and sentence-transformers for what scikit-learn's
HDBSCAN, PCA and a count matrix do here; the measured quality on the shared sets is in
docs/experiments.md ("Themes nobody labelled").

Example:
    >>> found = discover(scored_frame, DiscoverConfig(head="pain_points"))     # doctest: +SKIP
    >>> found.themes[0].keywords[:3]                                           # doctest: +SKIP
    ['bag', 'luggage', 'baggage']
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

URL_OR_HANDLE = re.compile(r"https?://\S+|www\.\S+|[@#]\w+|&amp;|\d+")


@dataclass(frozen=True)
class DiscoverConfig:
    """What to cluster and how. ``min_theme``: the smallest theme (rows; default: 1 % of the rows
    considered, at least 10)."""

    head: str = "pain_points"
    mood_head: str | None = "sentiment"  # None: a file with no sentiment head, every unexplained row counts
    mood: str = "negative"
    text_column: str = "text"
    date_column: str | None = None
    everything: bool = False
    min_theme: int | None = None
    dimensions: int = 5
    # a text left out of every dense group joins the nearest theme when it is as close to that theme's
    # centre as this quantile of the theme's own texts (None: noise stays noise)
    join_quantile: float | None = 0.1
    keywords: int = 8
    examples: int = 5
    merge_above: float = 0.9
    encoder: str | None = None  # a sentence encoder (hub id or folder); None: all-MiniLM-L6-v2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.min_theme is not None and self.min_theme < 2:
            raise ValueError(f"min_theme must be at least 2, got {self.min_theme}")
        if not 2 <= self.dimensions <= 1024:
            raise ValueError(f"dimensions must be from 2 to 1024, got {self.dimensions}")
        if not 0 < self.merge_above <= 1:
            raise ValueError(f"merge_above must be over 0 and at most 1, got {self.merge_above}")
        if self.join_quantile is not None and not 0 <= self.join_quantile <= 1:
            raise ValueError(f"join_quantile must be from 0 to 1, got {self.join_quantile}")


@dataclass
class Theme:
    """One group of texts that says the same thing."""

    name: str
    keywords: list[str]
    size: int
    share_of_negative: float
    examples: list[str]
    rows: list[int]
    covered_by: str | None = None
    nearest_label: str | None = None
    trend: dict[str, int] = field(default_factory=dict)


@dataclass
class Discovery:
    """The themes, and what they were found among."""

    themes: list[Theme]
    considered: int
    negative: int
    unclustered: int
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"themes": [asdict(theme) for theme in self.themes], "considered": self.considered,
                "negative": self.negative, "unclustered": self.unclustered, "settings": self.settings}


def candidate_rows(frame: pd.DataFrame, config: DiscoverConfig) -> tuple[np.ndarray, int]:
    """The 0-based rows to cluster, and how many scored rows are negative (the shares' base)."""
    columns = list(frame.columns)
    needed = [c for c in (config.text_column, config.head, config.mood_head) if c is not None and c not in columns]
    if needed:
        raise ValueError(f"no column {needed} in the scored file; found {columns}. Discover needs a file written "
                         "by `earshot score` (--head, --mood-head and --text-column name its columns; "
                         "--mood-head none for a model without one)")
    scored = _blank(frame["error"]) if "error" in frame else pd.Series(True, index=frame.index)
    negative = scored & (frame[config.mood_head].astype(str) == config.mood) if config.mood_head else scored
    chosen = scored if config.everything else negative & _blank(frame[config.head])
    return np.flatnonzero(chosen.to_numpy()), int(negative.sum())


def discover(frame: pd.DataFrame, config: DiscoverConfig, vectors: np.ndarray | None = None,
             progress: bool = True) -> Discovery:
    """Themes among the candidate rows of a scored ``frame`` (``vectors``: their unit-length text
    vectors, when already at hand)."""
    rows, negative = candidate_rows(frame, config)
    texts = frame[config.text_column].astype(str).to_numpy()[rows].tolist()
    settings = {k: v for k, v in asdict(config).items()}
    if len(rows) < 2 * (config.min_theme or 10):
        return Discovery([], len(rows), negative, len(rows), settings)
    if vectors is None:
        vectors = embed(texts, config.encoder, progress)
    groups = cluster(vectors, config, len(rows))
    groups = merge_near(groups, vectors, texts, config)
    groups = join_outliers(groups, vectors, config.join_quantile)
    # the unclustered texts are one more class: words common everywhere then weigh less in every theme
    clustered = np.concatenate(groups) if groups else np.zeros(0, dtype=int)
    rest = [texts[i] for i in np.setdiff1d(np.arange(len(texts)), clustered)]
    keywords = ctfidf_keywords([[texts[i] for i in g] for g in groups] + [rest], config.keywords)[: len(groups)]
    themes = [describe(group, rows, texts, vectors, frame, config, negative, words)
              for group, words in zip(groups, keywords)]
    themes.sort(key=lambda theme: -theme.size)
    _name_covered(themes, frame, config, vectors, rows)
    return Discovery(themes, len(rows), negative, len(rows) - len(clustered), settings)


def embed(texts: Sequence[str], encoder: str | None, progress: bool = True) -> np.ndarray:
    """Unit-length sentence vectors of ``texts`` (a sentence encoder, not the classifier: its geometry
    keeps apart what no label names)."""
    from tqdm.auto import tqdm

    from earshot.model import DEFAULT_BASE_MODEL, EarshotModel, Head, resolve_base_model

    model = EarshotModel.from_base(resolve_base_model(encoder or DEFAULT_BASE_MODEL),
                                   [Head("unused", "multi", ["unused"])]).to_device("cpu")
    parts, step = [], 512
    for start in tqdm(range(0, len(texts), step), desc="embedding", unit="batch", disable=not progress):
        parts.append(model.embed(list(texts[start:start + step])))
    vectors = np.concatenate(parts) if parts else np.zeros((0, 1), dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def cluster(vectors: np.ndarray, config: DiscoverConfig, count: int) -> list[np.ndarray]:
    """HDBSCAN on the PCA-reduced vectors: each dense group's positions, noise left out."""
    from earshot.extras import require

    require("sklearn", extra="discover", feature="earshot discover")
    from sklearn.cluster import HDBSCAN
    from sklearn.decomposition import PCA

    dimensions = min(config.dimensions, vectors.shape[1], max(2, count - 1))
    reduced = PCA(n_components=dimensions, random_state=config.seed).fit_transform(vectors)
    reduced /= np.maximum(np.linalg.norm(reduced, axis=1, keepdims=True), 1e-12)
    smallest = config.min_theme or max(10, round(0.01 * count))
    settings = {"min_cluster_size": smallest, "min_samples": max(2, smallest // 2), "copy": True}
    labels = HDBSCAN(**settings).fit_predict(reduced)
    if (labels < 0).all():  # no split at all: the rows may be one theme, which HDBSCAN allows only when asked
        labels = HDBSCAN(**settings, allow_single_cluster=True).fit_predict(reduced)
    return [np.flatnonzero(labels == value) for value in sorted(set(labels) - {-1})]


def ctfidf_keywords(documents: Sequence[Sequence[str]], top: int) -> list[list[str]]:
    """Each group's words by class-based TF-IDF: a word's share of the group's words times
    log(1 + the mean words per group / the word's count over all groups)."""
    from sklearn.feature_extraction.text import CountVectorizer

    if not documents:
        return []
    joined = [" ".join(group) for group in documents]
    vectorizer = CountVectorizer(stop_words="english", ngram_range=(1, 2), min_df=1,
                                 preprocessor=lambda text: URL_OR_HANDLE.sub(" ", text.lower()))
    try:
        counts = vectorizer.fit_transform(joined).toarray().astype(float)
    except ValueError:  # nothing but stop words, handles and digits: no keyword to give
        return [[] for _ in documents]
    words = vectorizer.get_feature_names_out()
    tf = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    idf = np.log(1 + counts.sum(axis=1).mean() / np.maximum(counts.sum(axis=0), 1))
    weights = tf * idf
    return [[words[j] for j in np.argsort(-row)[:top] if row[j] > 0] for row in weights]


def merge_near(groups: list[np.ndarray], vectors: np.ndarray, texts: Sequence[str],
               config: DiscoverConfig) -> list[np.ndarray]:
    """Merge themes whose centres have a cosine of at least ``merge_above`` or that share two of their
    three first keywords: one complaint split by density is one theme."""
    merged = [np.asarray(g) for g in groups]
    changed = True
    while changed and len(merged) > 1:
        changed = False
        centres = np.stack([_unit(vectors[g].mean(axis=0)) for g in merged])
        heads = [set(k[:3]) for k in ctfidf_keywords([[texts[i] for i in g] for g in merged], 3)]
        similar = centres @ centres.T
        for a in range(len(merged)):
            for b in range(a + 1, len(merged)):
                if similar[a, b] >= config.merge_above or len(heads[a] & heads[b]) >= 2:
                    merged[a] = np.concatenate([merged[a], merged[b]])
                    del merged[b]
                    changed = True
                    break
            if changed:
                break
    return merged


def join_outliers(groups: list[np.ndarray], vectors: np.ndarray, quantile: float | None) -> list[np.ndarray]:
    """Give each text outside every theme to the nearest theme centre, when it is at least as close to
    it as the ``quantile`` of that theme's own texts (BERTopic's outlier reduction, by embeddings)."""
    if quantile is None or not groups:
        return groups
    centres = np.stack([_unit(vectors[g].mean(axis=0)) for g in groups])
    bars = np.array([np.quantile(vectors[g] @ centres[n], quantile) for n, g in enumerate(groups)])
    inside = np.concatenate(groups)
    outside = np.setdiff1d(np.arange(len(vectors)), inside)
    if not len(outside):
        return groups
    similarity = vectors[outside] @ centres.T
    nearest = similarity.argmax(axis=1)
    close = similarity[np.arange(len(outside)), nearest] >= bars[nearest]
    return [np.concatenate([g, outside[close & (nearest == n)]]) for n, g in enumerate(groups)]


def describe(group: np.ndarray, rows: np.ndarray, texts: Sequence[str], vectors: np.ndarray, frame: pd.DataFrame,
             config: DiscoverConfig, negative: int, keywords: list[str]) -> Theme:
    centre = _unit(vectors[group].mean(axis=0))
    nearest = group[np.argsort(-(vectors[group] @ centre))]
    examples: list[str] = []
    for position in nearest:
        if texts[position] not in examples:
            examples.append(texts[position])
        if len(examples) == config.examples:
            break
    file_rows = sorted(int(rows[i]) for i in group)
    return Theme(name=" / ".join(keywords[:3]) or f"theme {len(group)}", keywords=keywords, size=len(group),
                 share_of_negative=len(group) / max(negative, 1), examples=examples, rows=file_rows,
                 trend=_trend(frame, file_rows, config.date_column))


def _name_covered(themes: list[Theme], frame: pd.DataFrame, config: DiscoverConfig, vectors: np.ndarray,
                  rows: np.ndarray) -> None:
    """Name the label a theme is already covered by: one that at least half of its rows carry."""
    labels = frame[config.head].fillna("").astype(str)
    for theme in themes:
        carried = pd.Series([label for cell in labels.iloc[theme.rows] for label in cell.split(";") if label])
        if len(carried):
            top, count = carried.value_counts().index[0], int(carried.value_counts().iloc[0])
            theme.nearest_label = str(top)
            if count >= 0.5 * theme.size:
                theme.covered_by = str(top)


def _trend(frame: pd.DataFrame, file_rows: list[int], date_column: str | None) -> dict[str, int]:
    if date_column is None:
        return {}
    dates = pd.to_datetime(frame[date_column].iloc[file_rows], errors="coerce", utc=True).dropna()
    if dates.empty:
        return {}
    span_days = (dates.max() - dates.min()).days
    period = "D" if span_days <= 62 else "W" if span_days <= 366 else "M"
    counts = dates.dt.tz_localize(None).dt.to_period(period).value_counts().sort_index()
    return {str(key): int(value) for key, value in counts.items()}


def _blank(cells: pd.Series) -> pd.Series:
    return cells.isna() | (cells.astype(str).str.strip() == "")


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def proposed_taxonomy(discovery: Discovery, head: str, heads: Sequence[Any],
                      descriptions: dict[str, dict[str, str]]) -> dict[str, Any]:
    """A taxonomy (``earshot train --taxonomy``) with every head of the model (``heads``: name, kind,
    labels; ``descriptions``: head -> label -> description) and, in ``head``, each new theme as a candidate
    label: its name from its keywords, a description, and its representative texts as examples."""
    proposed: dict[str, Any] = {}
    for model_head in heads:
        known = descriptions.get(model_head.name, {})
        proposed[model_head.name] = {"kind": model_head.kind, "labels": [
            {"name": label, "description": known.get(label) or label} for label in model_head.labels]}
    if head not in proposed:
        raise ValueError(f"the model has no head {head!r}; its heads are {list(proposed)}")
    entries = proposed[head]["labels"]
    taken = {entry["name"] for entry in entries}
    for theme in discovery.themes:
        if theme.covered_by is not None:
            continue
        name = _label_name(theme.keywords, taken)
        taken.add(name)
        entries.append({"name": name, "description": f"Customers complain about {', '.join(theme.keywords[:5])} "
                                                     f"(a theme found by earshot discover; {theme.size} texts).",
                        "examples": list(theme.examples)})
    return {"heads": proposed}


def _label_name(keywords: Sequence[str], taken: set[str]) -> str:
    base = " ".join(dict.fromkeys(" ".join(keywords[:2]).split())).capitalize() or "New theme"
    name, number = base, 2
    while name in taken:
        name, number = f"{base} {number}", number + 1
    return name


def themes_json(discovery: Discovery) -> str:
    return json.dumps(discovery.to_dict(), ensure_ascii=False, indent=2)
