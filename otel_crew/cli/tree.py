"""Rendering finished spans as a trace tree in the terminal (``otel-crew demo``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode
from rich.markup import escape
from rich.tree import Tree

from otel_crew.agentops_sessions.end_states import end_state
from otel_crew.roots.definition import is_root

_STATUS_STYLE = {StatusCode.OK: "green", StatusCode.ERROR: "bold red", StatusCode.UNSET: "dim"}
WIDTH = 80  # a terminal's columns: an error text longer than its line's room is cut (the span keeps it whole)
GUIDE = 4  # columns each level of the tree indents by


def _duration_ms(span: ReadableSpan) -> float:
    if span.start_time is None or span.end_time is None:
        return 0.0
    return (span.end_time - span.start_time) / 1e6


def _fitted(text: str, room: int) -> str:
    return text if len(text) <= room else text[: max(room - 1, 0)] + "…"


def _label(span: ReadableSpan, show_end_state: bool, depth: int = 0) -> str:
    code = span.status.status_code
    plain = f"{span.name}  {code.name}  {_duration_ms(span):.1f} ms"
    label = f"{escape(span.name)}  [{_STATUS_STYLE[code]}]{code.name}[/]  [dim]{_duration_ms(span):.1f} ms[/]"
    if code is StatusCode.ERROR and span.status.description:
        room = WIDTH - GUIDE * depth - len(plain) - 2
        label += f"  [red]{escape(_fitted(span.status.description, room))}[/]"
    if show_end_state and is_root(span):
        label += f"  [cyan]AgentOps end state: {escape(end_state(span))}[/]"
    return label


def trace_trees(spans: Iterable[ReadableSpan], show_end_state: bool = False) -> list[Tree]:
    """One tree per root span of ``spans`` (a span whose parent is not among them);
    with ``show_end_state`` the root's line says the AgentOps end state it got."""
    finished = sorted(spans, key=lambda span: span.start_time or 0)
    known = {span.context.span_id for span in finished if span.context is not None}
    children: dict[int | None, list[ReadableSpan]] = defaultdict(list)
    for span in finished:
        parent = span.parent.span_id if span.parent is not None else None
        children[parent if parent in known else None].append(span)

    def grow(tree: Tree, span: ReadableSpan, depth: int) -> None:
        branch = tree.add(_label(span, show_end_state, depth))
        for child in children[span.context.span_id if span.context else None]:
            grow(branch, child, depth + 1)

    trees = []
    for root in children[None]:
        tree = Tree(_label(root, show_end_state))
        for child in children[root.context.span_id if root.context else None]:
            grow(tree, child, 1)
        trees.append(tree)
    return trees
