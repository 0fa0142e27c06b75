"""Small real CrewAI Flows for the tests: their steps kick off the local-model crews
of ``otel_crew.cli.demo_crews`` (or single agents), on every supported CrewAI line."""

from __future__ import annotations

import asyncio

from crewai.flow.flow import Flow, and_, listen, or_, router, start

from otel_crew.cli.demo_crews import failing_crew, research_crew, researcher


class TwoCrews(Flow):  # type: ignore[type-arg]
    """Research, then write: one crew per step. A ``probe`` callable set on the
    instance is called at the start of the second step; ``probed`` keeps its answers."""

    @start()
    def research(self) -> str:
        return str(research_crew(name="research").kickoff(inputs={"topic": "flows"}).raw)

    @listen(research)
    def write(self, facts: str) -> str:
        probe = getattr(self, "probe", None)
        if probe is not None:
            self.probed.append(probe())
        return str(research_crew(name="writing").kickoff(inputs={"topic": facts[:10]}).raw)


class FailingStep(Flow):  # type: ignore[type-arg]
    """A start step whose crew's model fails; what it raised goes to the instance's ``raised`` list."""

    @start()
    def doomed(self) -> str:
        try:
            return str(failing_crew(name="doomed-crew").kickoff(inputs={"topic": "x"}).raw)
        except BaseException as error:
            self.raised.append(error)
            raise


class Branching(Flow):  # type: ignore[type-arg]
    """A router that follows ``state["path"]``."""

    @start()
    def begin(self) -> str:
        return "begun"

    @router(begin)
    def decide(self) -> str:
        return str(self.state["path"])

    @listen("go_left")
    def left(self) -> str:
        return "left"

    @listen("go_right")
    def right(self) -> str:
        return "right"


class Parallel(Flow):  # type: ignore[type-arg]
    """Two start steps (one async, one sync) joined by ``and_`` and raced by ``or_``."""

    @start()
    async def fetch_async(self) -> str:
        await asyncio.sleep(0)
        return "a"

    @start()
    def fetch_sync(self) -> str:
        return "b"

    @listen(and_(fetch_async, fetch_sync))
    def joined(self) -> str:
        return "joined"

    @listen(or_(fetch_async, fetch_sync))
    def either(self) -> str:
        return "either"


class AsyncCrews(Flow):  # type: ignore[type-arg]
    """Async steps that await a crew and yield to the loop: made to interleave under gather."""

    @start()
    async def gather_facts(self) -> str:
        await asyncio.sleep(0.01)
        result = await research_crew(name="async-research").kickoff_async(inputs={"topic": "a"})
        return str(result.raw)

    @listen(gather_facts)
    async def summarise(self, facts: str) -> str:
        await asyncio.sleep(0.01)
        return facts[:10]


class AgentSteps(Flow):  # type: ignore[type-arg]
    """``Agent.kickoff()`` in a sync step and in an async step (CrewAI 1.x)."""

    @start()
    def ask_sync(self) -> str:
        return str(researcher().kickoff("count the words").raw)

    @listen(ask_sync)
    async def ask_async(self) -> str:
        result = researcher().kickoff("count again")
        if asyncio.iscoroutine(result):  # CrewAI 1.x inside a running loop
            result = await result
        return str(result.raw)
