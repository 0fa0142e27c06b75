"""A real CrewAI 1.x Flow that stops for human feedback: its provider cannot
answer at once and raises ``HumanFeedbackPending``, so the flow pauses and
CrewAI persists it (default SQLite persistence, under ``CREWAI_STORAGE_DIR``)."""

from __future__ import annotations

from typing import Any

from crewai.flow.async_feedback import HumanFeedbackPending
from crewai.flow.flow import Flow, listen, start
from crewai.flow.human_feedback import human_feedback


class AskLater:
    """A feedback provider whose human answers later (a ticket, a Slack thread)."""

    def request_feedback(self, context: Any, flow: Any) -> str:
        raise HumanFeedbackPending(context=context)


class Review(Flow):  # type: ignore[type-arg]
    """Draft, wait for a reviewer, publish with the review."""

    @start()
    @human_feedback(message="Publish this?", provider=AskLater(), metadata={"team": "docs"})
    def draft(self) -> str:
        return "draft"

    @listen(draft)
    def publish(self, review: Any) -> str:
        return f"published: {review.feedback} / {review.metadata}"
