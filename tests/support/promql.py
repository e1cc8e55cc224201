"""Reading the Grafana dashboard's PromQL: the metric names and labels each query uses."""

from __future__ import annotations

import json
import re
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "crawlfleet.json"

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{([^}]*)\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_CLAUSE = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_KEYWORDS = frozenset({"bool", "offset", "and", "or", "unless", "inf", "nan"})
_LABEL_VALUES = re.compile(r"label_values\(\s*([a-zA-Z_:][\w:]*)\s*,\s*(\w+)\s*\)")


def dashboard_queries(path: Path = DASHBOARD) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel's target and every query variable (``label_values(m,
    l)`` is read as ``count by (l) (m)``)."""
    dashboard = json.loads(path.read_text())
    queries = [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            metric, label = _LABEL_VALUES.fullmatch(variable["query"]["query"]).groups()  # type: ignore[union-attr]
            queries.append((f"${variable['name']}", f"count by ({label}) ({metric})"))
    return queries


def _bare(expr: str) -> str:
    """The expression without strings, label matchers, ranges and grouping clauses."""
    expr = _STRING.sub('""', expr)
    expr = _MATCHERS.sub("", expr)
    expr = _RANGE.sub("", expr)
    return _CLAUSE.sub("", expr)


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects (functions and aggregations are names followed by
    a parenthesis, once grouping clauses are gone)."""
    bare = _bare(expr)
    names = set()
    for match in _NAME.finditer(bare):
        if bare[match.end() :].lstrip().startswith("("):
            continue
        if match.group().lower() not in _KEYWORDS:
            names.add(match.group())
    return names


def grouping_labels(expr: str) -> set[str]:
    """The labels ``expr`` groups, joins or matches on."""
    expr = _STRING.sub('""', expr)
    labels: set[str] = set()
    for clause in _CLAUSE.findall(expr):
        labels.update(label.strip() for label in clause.split(",") if label.strip())
    for matchers in _MATCHERS.findall(expr):
        labels.update(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", matchers))
    return labels
