"""What AgentOps receives per session is one connected tree of otel-crew's spans; the user's export stays whole.

Each set-up order runs in a fresh process (AgentOps' import hook and its
CrewAI instrumentation are process-wide), with the real AgentOps SDK against
a loopback stand-in started there (tree_scenario.py).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from test_session_processor import run_script

pytestmark = pytest.mark.crewai

ORDERS = [
    "init,crewai,instrument",  # AgentOps' CrewAI instrumentation fails on its circular import first
    "crewai,init,instrument",  # AgentOps' CrewAI wrappers are on when the bridge comes
    "init,instrument",  # CrewAI imported by instrument(), after the bridge is on
    "crewai,instrument,init",  # AgentOps initialised last
]


def scenario(order: str) -> dict[str, Any]:
    result = run_script("tree_scenario.py", order)
    assert result.returncode == 0, result.stderr[-3000:]
    (report,) = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return report  # type: ignore[no-any-return]


@pytest.fixture(scope="module", params=ORDERS)
def run(request: pytest.FixtureRequest) -> dict[str, Any]:
    return scenario(request.param)


def in_root_trace(run: dict[str, Any]) -> list[dict[str, Any]]:
    return [span for span in run["agentops"] if span["trace_id"] == run["root_trace_id"]]


def test_agentops_receives_one_connected_tree_under_the_session(run: dict[str, Any]) -> None:
    received = in_root_trace(run)
    (session,) = [span for span in received if span["attributes"].get("agentops.span.kind") == "session"]
    assert session["name"] == "two-crews.session" and session["parent"] == run["root_span_id"]
    ids = {span["span_id"] for span in received}
    tops = [span["name"] for span in received if span["parent"] not in ids]
    assert tops == ["two-crews.session"], tops  # the root itself is not sent: the session stands for it
    kickoffs = [span for span in received if span["name"].startswith("invoke_workflow ")]
    assert sorted(span["name"] for span in kickoffs) == ["invoke_workflow research", "invoke_workflow writing"]
    assert {span["parent"] for span in kickoffs} == {session["span_id"]}


def test_every_crewai_step_reaches_agentops_once_with_agentops_kinds(run: dict[str, Any]) -> None:
    received = in_root_trace(run)
    names = Counter(span["name"] for span in received)
    user_names = Counter(span["name"] for span in run["user"] if span["name"] != "two-crews")
    assert names - Counter({"two-crews.session": 1}) == user_names  # the user's spans, each once
    agentops_own = [name for name in names if name.endswith((".agent", ".task", ".tool_usage", "crewai.workflow"))]
    assert agentops_own == []  # AgentOps' own CrewAI spans
    kinds = {span["name"].split(" ")[0]: span["attributes"].get("agentops.span.kind") for span in received}
    assert kinds == {
        "two-crews.session": "session",
        "invoke_workflow": "workflow",
        "invoke_agent": "agent",
        "execute_tool": "tool",
    }


def test_the_users_export_has_no_dangling_parent(run: dict[str, Any]) -> None:
    ids = {span["span_id"] for span in run["user"]}
    assert [span["name"] for span in run["user"] if span["parent"] and span["parent"] not in ids] == []
    assert len(run["user"]) == 9  # the root, 2 kickoffs, 4 agents, 2 tools: nothing of AgentOps'


def test_agentops_crewai_instrumentation_is_off_while_bridged_and_given_back_exactly(run: dict[str, Any]) -> None:
    assert run["bridged"]["entry"] == "CrewaiHandedOver"
    assert not run["bridged"]["kickoff"].startswith("FunctionWrapper")  # AgentOps' wrapper is not on kickoff
    if run["before"]["active"]:  # AgentOps' own instrumentor had run: the same object back, its wrapper too
        assert run["after"] == run["before"]
    else:  # AgentOps activated CrewAI while bridged: its own instrumentor now, as it would have done
        assert run["after"]["entry"] == "CrewaiInstrumentor"
        assert run["after"]["active"] == ["CrewaiInstrumentor"] and run["after"]["instrumented"] == [True]
        assert run["after"]["kickoff"].startswith("FunctionWrapper")
