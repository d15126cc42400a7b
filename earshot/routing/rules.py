"""Routing rules as data: a YAML file says which answers go where (``routes``), which label surges
raise an alert (``spikes``), and how deliveries are retried (``delivery``).

    routes:
      - name: refunds-to-billing
        when:
          sentiment: [negative]                                    # a head: any of these labels
          pain_points: [Refunds and returns, Billing and charges]  # every condition must hold
          min_score: 0.7                                           # optional, on the matched labels
          fields: {channel: [email, chat]}                         # optional, on the item's metadata
        send:
          webhook: https://billing.example/hooks/earshot           # or slack: https://hooks.slack.com/...
          secret_env: BILLING_HOOK_SECRET                          # optional: HMAC-SHA256 signature
        redact: [email, phone, card]                               # optional: what the delivery hides
    spikes:
      - name: billing-surge
        head: pain_points
        labels: [Billing and charges]      # optional: every label of the head
        window: 1h                         # recent volume ...
        baseline: 7d                       # ... against this trailing period
        min_count: 10
        min_ratio: 2
        p_value: 0.001
        send: {slack: https://hooks.slack.com/services/T/B/X}
    delivery:
      max_attempts: 12
      backoff_seconds: 2
      max_backoff_seconds: 600

A mistake (YAML that does not parse, an unknown key, head or label, a URL that is not http or https)
is a ``RulesError`` naming the file, the line and the problem, raised when the file is read: the
service does not start with a rule that could never fire.

Example:
    >>> book = read_rules("routes.yaml", heads)          # doctest: +SKIP
    >>> [route.name for route in book.matching(answer, {"channel": "email"})]  # doctest: +SKIP
    ['refunds-to-billing']
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence
from urllib.parse import urlparse

import yaml

if TYPE_CHECKING:  # the sender process reads the policy from here and needs no model (nor torch)
    from earshot.model import Head


class RulesError(ValueError):
    """A routes file that cannot be used: the message names the file, the line and the problem."""


@dataclass(frozen=True)
class Target:
    """Where a delivery goes: a JSON webhook, or a Slack incoming webhook (a ``text`` message)."""

    channel: str  # webhook | slack
    url: str
    secret_env: str | None = None

    def secret(self) -> bytes | None:
        """The signing secret, read from the environment when a delivery is sent (never stored)."""
        if self.secret_env is None:
            return None
        value = os.environ.get(self.secret_env)
        return value.encode() if value else None


@dataclass(frozen=True)
class Route:
    """Send every answer that meets all of ``labels`` (head -> any of these labels), ``min_score`` (on
    the matched labels) and ``fields`` (metadata key -> any of these values) to ``target``."""

    name: str
    labels: Mapping[str, frozenset[str]]
    target: Target
    min_score: float = 0.0
    fields: Mapping[str, frozenset[str]] = field(default_factory=dict)
    redact: tuple[str, ...] = ()

    def matches(self, heads: Mapping[str, Any], metadata: Mapping[str, Any] | None) -> bool:
        """Whether an answer (``{head: {"labels": [{"label", "score"}, ...]}}``, as /classify returns it)
        and its item's metadata meet every condition.

        Example:
            >>> route = Route("r", {"sentiment": frozenset({"negative"})}, Target("webhook", "http://x"))
            >>> route.matches({"sentiment": {"labels": [{"label": "negative", "score": 0.9}]}}, None)
            True
        """
        for head, wanted in self.labels.items():
            answered = heads.get(head)
            if answered is None:
                return False
            if not any(entry["label"] in wanted and entry["score"] >= self.min_score
                       for entry in answered["labels"]):
                return False
        for key, values in self.fields.items():
            value = (metadata or {}).get(key)
            if value is None or _field_text(value) not in values:
                return False
        return True


@dataclass(frozen=True)
class SpikeRule:
    """Alert when one label's volume in the last ``window_s`` stands out against the trailing
    ``baseline_s`` before it: at least ``min_count`` items, ``min_ratio`` times the expected count, and
    a one-sided Poisson p-value under ``p_value``."""

    name: str
    head: str
    labels: frozenset[str] | None
    target: Target
    window_s: float = 3600.0
    baseline_s: float = 7 * 86400.0
    min_count: int = 10
    min_ratio: float = 2.0
    p_value: float = 0.001
    examples: int = 3
    redact: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeliveryPolicy:
    """How often and how long a failing delivery is retried before it is dead (``earshot alerts list``)."""

    max_attempts: int = 12
    backoff_seconds: float = 2.0
    max_backoff_seconds: float = 600.0
    timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if not 0 < self.backoff_seconds <= self.max_backoff_seconds:
            raise ValueError("backoff_seconds must be over 0 and at most max_backoff_seconds")
        if self.timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be over 0, got {self.timeout_seconds}")

    def backoff(self, attempts: int) -> float:
        """Seconds before the next try after ``attempts`` failed ones: doubling, capped.

        Example:
            >>> DeliveryPolicy(backoff_seconds=2, max_backoff_seconds=10).backoff(3)
            8.0
        """
        return float(min(self.max_backoff_seconds, self.backoff_seconds * 2 ** max(0, attempts - 1)))


@dataclass(frozen=True)
class RuleBook:
    """Everything one routes file says."""

    routes: tuple[Route, ...] = ()
    spikes: tuple[SpikeRule, ...] = ()
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    source: str = ""

    def matching(self, heads: Mapping[str, Any], metadata: Mapping[str, Any] | None) -> list[Route]:
        """The routes an answer meets, in file order."""
        return [route for route in self.routes if route.matches(heads, metadata)]

    @property
    def spike_heads(self) -> set[str]:
        return {rule.head for rule in self.spikes}


# ---------------------------------------------------------------------------------------- reading
_ROUTE_KEYS = {"name", "when", "send", "redact"}
_WHEN_KEYS = {"min_score", "fields"}
_SEND_KEYS = {"webhook", "slack", "secret_env"}
_SPIKE_KEYS = {"name", "head", "labels", "window", "baseline", "min_count", "min_ratio", "p_value", "examples",
               "send", "redact"}
_DELIVERY_KEYS = {"max_attempts", "backoff_seconds", "max_backoff_seconds", "timeout_seconds"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def read_rules(path: str | Path, heads: Sequence[Head]) -> RuleBook:
    """The rules of ``path``, checked against the model's ``heads``; a RulesError names file, line, problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RulesError(f"{path}: cannot read the routes file ({error.strerror})") from None
    return parse_rules(text, heads, str(path))


def parse_rules(text: str, heads: Sequence[Head], source: str = "<routes>") -> RuleBook:
    """``read_rules`` on the text of a routes file."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark, context = getattr(error, "problem_mark", None), getattr(error, "context_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        opened = (f" ({error.context} at line {context.line + 1})"
                  if context is not None and mark is not None and context.line != mark.line else "")
        raise RulesError(f"{source}{line}: not valid YAML: {getattr(error, 'problem', None) or error}{opened}") from None
    reader = _Reader(source, {head.name: head for head in heads})
    if root is None:
        raise RulesError(f"{source}: the file is empty; it needs a `routes:` or `spikes:` list")
    top = reader.mapping(root, "the file", {"routes", "spikes", "delivery"})
    if "routes" not in top and "spikes" not in top:
        raise RulesError(f"{source}:{root.start_mark.line + 1}: the file needs a `routes:` or `spikes:` list")
    routes = tuple(reader.route(node) for node in reader.sequence(top["routes"], "routes")) if "routes" in top else ()
    spikes = tuple(reader.spike(node) for node in reader.sequence(top["spikes"], "spikes")) if "spikes" in top else ()
    reader.unique_names([*top.get("routes", _EMPTY).value, *top.get("spikes", _EMPTY).value])
    delivery = reader.delivery(top["delivery"]) if "delivery" in top else DeliveryPolicy()
    return RuleBook(routes, spikes, delivery, source)


_EMPTY = yaml.SequenceNode("tag:yaml.org,2002:seq", [])


class _Reader:
    """Turns the YAML node tree into rules, with the line of each node at hand for errors."""

    def __init__(self, source: str, heads: Mapping[str, Head]) -> None:
        self.source, self.heads = source, heads

    def fail(self, node: yaml.Node, problem: str) -> RulesError:
        return RulesError(f"{self.source}:{node.start_mark.line + 1}: {problem}")

    def mapping(self, node: yaml.Node, what: str, allowed: set[str] | None = None) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping (key: value lines)")
        out: dict[str, yaml.Node] = {}
        for key, value in node.value:
            name = self.scalar(key, f"a key of {what}")
            if allowed is not None and name not in allowed:
                raise self.fail(key, f"unknown key {name!r} in {what}; expected one of {sorted(allowed)}")
            if name in out:
                raise self.fail(key, f"{name!r} appears twice in {what}")
            out[name] = value
        return out

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{what} must be a list")
        return list(node.value)

    def scalar(self, node: yaml.Node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.value == "":
            raise self.fail(node, f"{what} must be a non-empty value")
        return str(node.value)

    def strings(self, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node]]:
        """A value or a list of values, each with its node."""
        items = node.value if isinstance(node, yaml.SequenceNode) else [node]
        if not items:
            raise self.fail(node, f"{what} is an empty list")
        return [(self.scalar(item, f"each value of {what}"), item) for item in items]

    def number(self, node: yaml.Node, what: str, low: float, high: float = float("inf"), integer: bool = False) -> float:
        raw = self.scalar(node, what)
        try:
            value = int(raw) if integer else float(raw)
        except ValueError:
            raise self.fail(node, f"{what} must be {'an integer' if integer else 'a number'}, got {raw!r}") from None
        if not low <= value <= high:
            raise self.fail(node, f"{what} must be from {low} to {high}, got {value}")
        return value

    def duration(self, node: yaml.Node, what: str) -> float:
        raw = self.scalar(node, what)
        found = _DURATION.match(raw)
        if not found or float(found.group(1)) <= 0:
            raise self.fail(node, f"{what} must be a duration such as 90s, 15m, 1h or 7d, got {raw!r}")
        return float(found.group(1)) * _SECONDS[found.group(2)]

    def head_labels(self, head_name: str, node: yaml.Node, key: yaml.Node) -> frozenset[str]:
        head = self.heads.get(head_name)
        if head is None:
            raise self.fail(key, f"unknown head {head_name!r}; the model's heads are {sorted(self.heads)}")
        labels = []
        for label, label_node in self.strings(node, f"the labels of {head_name}"):
            if label not in head.labels:
                raise self.fail(label_node, f"{head_name} has no label {label!r}; its labels are {list(head.labels)}")
            labels.append(label)
        return frozenset(labels)

    def target(self, node: yaml.Node, where: str) -> Target:
        send = self.mapping(node, f"send of {where}", _SEND_KEYS)
        channels = [name for name in ("webhook", "slack") if name in send]
        if len(channels) != 1:
            raise self.fail(node, f"send of {where} needs exactly one of webhook: or slack:")
        url_node = send[channels[0]]
        url = self.scalar(url_node, f"{channels[0]} of {where}")
        try:
            parts = urlparse(url)
        except ValueError as error:
            raise self.fail(url_node, f"{channels[0]} of {where} is not a URL ({error}): {url!r}") from None
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise self.fail(url_node, f"{channels[0]} of {where} must be an http:// or https:// URL, got {url!r}")
        secret_env = self.scalar(send["secret_env"], f"secret_env of {where}") if "secret_env" in send else None
        return Target(channels[0], url, secret_env)

    def redaction(self, node: yaml.Node | None, where: str) -> tuple[str, ...]:
        if node is None:
            return ()
        from earshot.redaction import check_kinds

        try:
            return check_kinds([value for value, _ in self.strings(node, f"redact of {where}")], f"redact of {where}")
        except ValueError as error:
            raise self.fail(node, str(error)) from None

    def entry(self, node: yaml.Node, kind: str, allowed: set[str], needed: tuple[str, ...]
              ) -> tuple[dict[str, yaml.Node], str]:
        """A route's or spike's keys, with those it needs checked, and how errors name it."""
        spec = self.mapping(node, f"a {kind}", allowed)
        for key in needed:
            if key not in spec:
                raise self.fail(node, f"a {kind} needs {key}:")
        return spec, f"{kind} {self.scalar(spec['name'], f'a {kind} name')!r}"

    def route(self, node: yaml.Node) -> Route:
        spec, where = self.entry(node, "route", _ROUTE_KEYS, ("name", "when", "send"))
        name = spec["name"].value
        when = self.mapping(spec["when"], f"when of {where}")
        labels = {head: self.head_labels(head, value, key)
                  for key, value in spec["when"].value
                  if (head := self.scalar(key, "a condition")) not in _WHEN_KEYS}
        fields = {}
        if "fields" in when:
            for key, value in self.mapping(when["fields"], f"fields of {where}").items():
                self.strings(value, f"field {key!r}")  # each a non-empty value
                nodes = value.value if isinstance(value, yaml.SequenceNode) else [value]
                fields[key] = frozenset(_field_text(yaml.SafeLoader("").construct_object(node)) for node in nodes)
        if not labels and not fields:
            raise self.fail(spec["when"], f"when of {where} names no head and no field: it would send every answer")
        min_score = self.number(when["min_score"], f"min_score of {where}", 0.0, 1.0) if "min_score" in when else 0.0
        if "min_score" in when and not labels:
            raise self.fail(when["min_score"], f"min_score of {where} applies to matched labels; name a head")
        return Route(name, labels, self.target(spec["send"], where), min_score, fields,
                     self.redaction(spec.get("redact"), where))

    def spike(self, node: yaml.Node) -> SpikeRule:
        spec, where = self.entry(node, "spike", _SPIKE_KEYS, ("name", "head", "send"))
        name = spec["name"].value
        head = self.scalar(spec["head"], f"head of {where}")
        labels = self.head_labels(head, spec["labels"], spec["head"]) if "labels" in spec else None
        if head not in self.heads:
            raise self.fail(spec["head"], f"unknown head {head!r}; the model's heads are {sorted(self.heads)}")
        numbers: dict[str, Any] = {}
        if "window" in spec:
            numbers["window_s"] = self.duration(spec["window"], f"window of {where}")
        if "baseline" in spec:
            numbers["baseline_s"] = self.duration(spec["baseline"], f"baseline of {where}")
        if numbers.get("baseline_s", SpikeRule.baseline_s) <= numbers.get("window_s", SpikeRule.window_s):
            raise self.fail(node, f"baseline of {where} must be longer than its window")
        for key, low, high, integer in (("min_count", 1, float("inf"), True), ("min_ratio", 1.0, float("inf"), False),
                                        ("p_value", 0.0, 1.0, False), ("examples", 0, 20, True)):
            if key in spec:
                numbers[key] = self.number(spec[key], f"{key} of {where}", low, high, integer)
        return SpikeRule(name, head, labels, self.target(spec["send"], where),
                         redact=self.redaction(spec.get("redact"), where), **numbers)

    def delivery(self, node: yaml.Node) -> DeliveryPolicy:
        spec = self.mapping(node, "delivery", _DELIVERY_KEYS)
        values = {key: self.number(value, f"delivery {key}", 1 if key == "max_attempts" else 0.001,
                                   integer=key == "max_attempts") for key, value in spec.items()}
        try:
            return DeliveryPolicy(**values)
        except ValueError as error:
            raise self.fail(node, f"delivery: {error}") from None

    def unique_names(self, nodes: Iterable[yaml.Node]) -> None:
        seen: set[str] = set()
        for node in nodes:
            if not isinstance(node, yaml.MappingNode):
                continue
            for key, value in node.value:
                if key.value == "name":
                    if value.value in seen:
                        raise self.fail(value, f"the name {value.value!r} is used twice: delivery ids stand on it")
                    seen.add(value.value)


def _field_text(value: Any) -> str:
    """Metadata and rule values compare as text: booleans as true/false (YAML's yes, on, True too), a
    whole number the same whether written 1 or 1.0."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
