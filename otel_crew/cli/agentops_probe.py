"""Asking AgentOps whether it takes the key: its own token exchange
(``POST {AGENTOPS_API_ENDPOINT}/v3/auth/token``), bounded by a short timeout,
so that ``doctor`` says in one line what is wrong (no key, a refused key, an
endpoint that does not answer) before a pipeline's sessions go nowhere."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.client import HTTPException

__all__ = ["DEFAULT_API_ENDPOINT", "AgentOpsProbe", "probe_agentops"]

DEFAULT_API_ENDPOINT = "https://api.agentops.ai"  # AgentOps' own default
PROBE_TIMEOUT = 3.0


@dataclass(frozen=True)
class AgentOpsProbe:
    ok: bool
    detail: str  # one plain sentence


def probe_agentops(timeout_s: float = PROBE_TIMEOUT) -> AgentOpsProbe:
    """AgentOps' token exchange with ``AGENTOPS_API_KEY`` at ``AGENTOPS_API_ENDPOINT``."""
    key = os.environ.get("AGENTOPS_API_KEY", "")
    endpoint = os.environ.get("AGENTOPS_API_ENDPOINT", DEFAULT_API_ENDPOINT).rstrip("/")
    if not key:
        return AgentOpsProbe(False, "no AGENTOPS_API_KEY set: agentops.init() has no key")
    request = urllib.request.Request(
        f"{endpoint}/v3/auth/token",
        data=json.dumps({"api_key": key}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            token = json.loads(answer.read() or b"{}").get("token")
    except urllib.error.HTTPError as error:
        if error.code in (401, 403):
            return AgentOpsProbe(False, f"{endpoint} refused AGENTOPS_API_KEY (HTTP {error.code}): check the key")
        return AgentOpsProbe(False, f"{endpoint} answered the token request with HTTP {error.code}")
    except (TimeoutError, urllib.error.URLError, HTTPException, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return AgentOpsProbe(
            False, f"{endpoint} did not answer within {timeout_s:g}s ({reason}): sessions would not be delivered"
        )
    if not token:
        return AgentOpsProbe(False, f"{endpoint} answered the token request without a token: is it AgentOps' API?")
    return AgentOpsProbe(True, f"{endpoint} took AGENTOPS_API_KEY")
