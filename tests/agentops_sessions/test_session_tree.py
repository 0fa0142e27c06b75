"""What AgentOps receives per session is one connected tree of otel-crew's spans; the user's export stays whole.

Each set-up order runs in a fresh process (AgentOps' import hook and its
CrewAI instrumentation are process-wide), with the real AgentOps SDK against
a loopback stand-in started there (tree_scenario.py); the pipelines checked
after that order run there one after the other, each under its own root.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from conftest import CREWAI, OncePerRun
from llm_pipeline import CALLS, MODEL
from test_session_processor import run_script

pytestmark = pytest.mark.crewai

AGENTOPS_USAGE = ("prompt_tokens", "completion_tokens", "total_tokens")

ORDERS = [
    "init,crewai,instrument",  # AgentOps' CrewAI instrumentation fails on its circular import first
    "crewai,init,instrument",  # AgentOps' CrewAI wrappers are on when the bridge comes
    "init,instrument",  # CrewAI imported by instrument(), after the bridge is on
    "crewai,instrument,init",  # AgentOps initialised last
]
# The five-call pipeline on the loopback LLM server, run in the same process as the order's local pipeline.
PIPELINES = [
    ("init,crewai,instrument", "llm"),
    ("init,instrument", "llm+stream"),
    ("crewai,init,instrument", "llm+genai"),  # the GenAI OpenAI instrumentation's chat spans
    ("init,instrument", "llm+genai+stream"),
]
if CREWAI is not None and CREWAI < (0, 130):  # CrewAI 0.102's LLM cannot read a stream
    PIPELINES = [(order, workload) for order, workload in PIPELINES if "+stream" not in workload]


Scenario = Callable[[str], dict[str, dict[str, Any]]]


@pytest.fixture(scope="session")
def scenario(once_per_run: OncePerRun) -> Scenario:
    """Order -> (workload -> report), for every workload this module runs after the order: one process per
    order in the whole run."""

    def run_order(order: str) -> dict[str, dict[str, Any]]:
        workloads = ["local", *(workload for pipeline_order, workload in PIPELINES if pipeline_order == order)]
        result = run_script("tree_scenario.py", order, ",".join(workloads))
        assert result.returncode == 0, result.stderr[-3000:]
        reports = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        assert [report["workload"] for report in reports] == workloads
        return {report["workload"]: report for report in reports}

    def reports(order: str) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = once_per_run(f"tree-{order}", lambda: run_order(order))
        return found

    return reports


@pytest.fixture(scope="module", params=ORDERS)
def run(request: pytest.FixtureRequest, scenario: Scenario) -> dict[str, Any]:
    return scenario(request.param)["local"]


def in_root_trace(run: dict[str, Any]) -> list[dict[str, Any]]:
    return [span for span in run["agentops"] if span["trace_id"] == run["root_trace_id"]]


def assert_one_tree_under_the_session(run: dict[str, Any], crews: list[str]) -> None:
    received = in_root_trace(run)
    (session,) = [span for span in received if span["attributes"].get("agentops.span.kind") == "session"]
    assert session["name"] == "two-crews.session" and session["parent"] == run["root_span_id"]
    ids = {span["span_id"] for span in received}
    tops = [span["name"] for span in received if span["parent"] not in ids]
    assert tops == ["two-crews.session"], tops  # the root itself is not sent: the session stands for it
    kickoffs = [span for span in received if span["name"].startswith("invoke_workflow ")]
    assert sorted(span["name"] for span in kickoffs) == [f"invoke_workflow {crew}" for crew in crews]
    assert {span["parent"] for span in kickoffs} == {session["span_id"]}


def assert_users_export_whole(run: dict[str, Any]) -> None:
    ids = {span["span_id"] for span in run["user"]}
    assert [span["name"] for span in run["user"] if span["parent"] and span["parent"] not in ids] == []


def test_agentops_receives_one_connected_tree_under_the_session(run: dict[str, Any]) -> None:
    assert_one_tree_under_the_session(run, ["research", "writing"])


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
        "chat": "llm",  # the local model's calls, through CrewAI's LLM layer
    }


def test_the_users_export_has_no_dangling_parent(run: dict[str, Any]) -> None:
    assert_users_export_whole(run)
    names = Counter(span["name"].split(" ")[0] for span in run["user"])
    # the root, 2 kickoffs, 4 agents, 2 tools, 6 LLM calls (two for each agent that used its tool): nothing of AgentOps'
    assert names == Counter({"two-crews": 1, "invoke_workflow": 2, "invoke_agent": 4, "execute_tool": 2, "chat": 6})


def test_agentops_crewai_instrumentation_is_off_while_bridged_and_given_back_exactly(
    run: dict[str, Any], scenario: Scenario
) -> None:
    assert run["bridged"]["entry"] == "CrewaiHandedOver"
    assert not run["bridged"]["kickoff"].startswith("FunctionWrapper")  # AgentOps' wrapper is not on kickoff
    if run["before"]["active"]:  # AgentOps' own instrumentor had run: the same object back, its wrapper too
        assert run["after"] == run["before"]
    else:  # AgentOps activated CrewAI while bridged: now what AgentOps alone gets on this CrewAI line
        alone = scenario("crewai,init,instrument")["local"]["before"]
        shape = ("entry", "active", "instrumented")
        assert {key: run["after"][key] for key in shape} == {key: alone[key] for key in shape}
        assert run["after"]["kickoff"].split()[0] == alone["kickoff"].split()[0]


# -- the five-call pipeline on the loopback LLM server ------------------------------------


@pytest.fixture(scope="module", params=PIPELINES, ids=["-".join(pipeline) for pipeline in PIPELINES])
def pipeline(request: pytest.FixtureRequest, scenario: Scenario) -> dict[str, Any]:
    order, workload = request.param
    return scenario(order)[workload]


def test_the_session_holds_the_five_calls_with_agentops_names_in_one_tree(pipeline: dict[str, Any]) -> None:
    assert_one_tree_under_the_session(pipeline, ["publish", "research"])
    received = in_root_trace(pipeline)
    by_id = {span["span_id"]: span for span in received}
    calls = [span for span in received if span["attributes"].get("gen_ai.operation.name") == "chat"]
    assert len(calls) == CALLS, [span["name"] for span in received]
    for call in calls:
        assert call["attributes"]["agentops.span.kind"] == "llm"
        assert call["attributes"]["gen_ai.system"] == "openai"
        assert call["attributes"]["gen_ai.request.model"] == MODEL
        usage = {key: call["attributes"].get(f"gen_ai.usage.{key}") for key in AGENTOPS_USAGE}
        assert usage == {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
        assert by_id[call["parent"]]["name"].startswith("invoke_agent ")
    agents = Counter(span["name"] for span in received if span["attributes"].get("agentops.span.kind") == "agent")
    assert agents == Counter(f"invoke_agent {role}" for role in ("Researcher", "Writer", "Editor", "Publisher"))
    assert not [span for span in received if span["name"].endswith((".agent", ".task", "crewai.workflow"))]


def test_the_users_export_is_whole_and_keeps_semconv_names_only(pipeline: dict[str, Any]) -> None:
    assert_users_export_whole(pipeline)
    calls = [span for span in pipeline["user"] if span["name"] == f"chat {MODEL}"]
    assert len(calls) == CALLS
    assert all(call["usage"] == {"gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 20} for call in calls)
