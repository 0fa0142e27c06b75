"""The AgentOps session of a root whose process was killed: ended "Indeterminate", once,
through AgentOps' own export path, by the next process that instruments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import AGENTOPS
from crashes import crash, received, recover_in, rows
from otlp_receivers import HttpReceiver

from otel_crew.agentops_sessions.processor import END_STATE_REASON_ATTRIBUTE
from otel_crew.roots.recovery import RECOVERED_DESCRIPTION
from otel_crew.semconv import RECOVERED_ATTRIBUTE

pytestmark = [pytest.mark.crewai, pytest.mark.scenario]


def test_a_killed_process_session_is_ended_indeterminate_once(tmp_path: Path) -> None:
    receiver = HttpReceiver().start()
    try:
        state_dir = tmp_path / "state"
        crashed = crash(state_dir, receiver.url, agentops="on")
        journaled = json.loads(crashed.row["session"])  # noted when the crew's kickoff opened it
        session_id = f"{journaled['context']['span_id']:016x}"
        assert f"{journaled['context']['trace_id']:032x}" == crashed.trace_id  # AgentOps' spans share the root's trace
        assert [span for span in AGENTOPS.sessions() if span.span_id == session_id] == []  # never ended

        recovered = recover_in(state_dir, receiver.url, count=2, agentops="on")

        # both recoverers have exited, AgentOps' exporter flushed: all it sent has arrived
        (session,) = [span for span in AGENTOPS.sessions() if span.span_id == session_id]
        assert (session.trace_id, session.parent_span_id) == (crashed.trace_id, crashed.span_id)
        assert session.name == "doomed.session"
        assert session.attributes["agentops.session.end_state"] == "Indeterminate"
        assert session.attributes[END_STATE_REASON_ATTRIBUTE] == RECOVERED_DESCRIPTION
        assert session.authorization == "Bearer loopback-jwt-token"  # AgentOps' own token, from its exporter
        (root,) = received(receiver, crashed.span_id)
        assert root.status_code == 2 and root.attributes[RECOVERED_ATTRIBUTE] is True
        assert sorted(map(len, recovered)) == [0, 1]
        assert rows(state_dir) == []
    finally:
        receiver.stop()
