"""Rendering finished spans as a trace tree in the terminal (``otel-crew demo``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode
from rich.markup import escape
from rich.tree import Tree

_STATUS_STYLE = {StatusCode.OK: "green", StatusCode.ERROR: "bold red", StatusCode.UNSET: "dim"}


def _duration_ms(span: ReadableSpan) -> float:
    if span.start_time is None or span.end_time is None:
        return 0.0
    return (span.end_time - span.start_time) / 1e6


def _label(span: ReadableSpan, root_notes: Mapping[int, str]) -> str:
    code = span.status.status_code
    label = f"{escape(span.name)}  [{_STATUS_STYLE[code]}]{code.name}[/]  [dim]{_duration_ms(span):.1f} ms[/]"
    if code is StatusCode.ERROR and span.status.description:
        label += f"  [red]{escape(span.status.description)}[/]"
    note = root_notes.get(span.context.span_id) if span.context is not None else None
    if note is not None:
        label += f"  [cyan]{escape(note)}[/]"
    return label


def trace_trees(spans: Iterable[ReadableSpan], root_notes: Mapping[int, str] | None = None) -> list[Tree]:
    """One tree per root span of ``spans`` (a span whose parent is not among them);
    a span named in ``root_notes`` (by span id) carries its note (what became of its AgentOps session)."""
    notes = root_notes or {}
    finished = sorted(spans, key=lambda span: span.start_time or 0)
    known = {span.context.span_id for span in finished if span.context is not None}
    children: dict[int | None, list[ReadableSpan]] = defaultdict(list)
    for span in finished:
        parent = span.parent.span_id if span.parent is not None else None
        children[parent if parent in known else None].append(span)

    def grow(tree: Tree, span: ReadableSpan) -> None:
        branch = tree.add(_label(span, notes))
        for child in children[span.context.span_id if span.context else None]:
            grow(branch, child)

    trees = []
    for root in children[None]:
        tree = Tree(_label(root, notes))
        for child in children[root.context.span_id if root.context else None]:
            grow(tree, child)
        trees.append(tree)
    return trees
