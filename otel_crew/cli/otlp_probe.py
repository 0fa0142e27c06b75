"""Asking an OTLP endpoint whether it is an OTLP trace receiver: a real, empty
export on the configured protocol (gRPC or HTTP), so that a process on the
port that is not an OTLP receiver is reported as such (``doctor``, ``demo``)."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.client import HTTPException
from urllib.parse import urlsplit

from otel_crew.config import ExportSettings

__all__ = ["ProbeResult", "probe"]

EMPTY_EXPORT = b""  # an ExportTraceServiceRequest with no spans, serialised


@dataclass(frozen=True)
class ProbeResult:
    answers: bool  # an OTLP receiver took the empty export
    listening: bool  # something accepted a TCP connection
    detail: str  # one plain clause, after "{endpoint} "


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "localhost", parts.port or (443 if parts.scheme == "https" else 80)


def _listening(url: str, timeout_s: float) -> bool:
    try:
        with socket.create_connection(_host_port(url), timeout=timeout_s):
            return True
    except OSError:
        return False


def _probe_http(settings: ExportSettings, timeout_s: float) -> ProbeResult:
    request = urllib.request.Request(
        settings.traces_url,
        data=EMPTY_EXPORT,
        method="POST",
        headers={**settings.headers, "Content-Type": "application/x-protobuf"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    try:
        with opener.open(request, timeout=timeout_s) as answer:
            content_type = answer.headers.get("Content-Type", "")
            if "protobuf" in content_type:
                return ProbeResult(True, True, "answers as an OTLP/HTTP receiver")
            return ProbeResult(
                False,
                True,
                f"answers HTTP {answer.status} ({content_type or 'no content type'}), not as an OTLP/HTTP receiver",
            )
    except urllib.error.HTTPError as error:
        if error.code in (401, 403):
            return ProbeResult(False, True, f"refuses the export (HTTP {error.code}): check OTEL_EXPORTER_OTLP_HEADERS")
        return ProbeResult(
            False, True, f"answers HTTP {error.code} at {urlsplit(settings.traces_url).path}: not an OTLP/HTTP receiver"
        )
    except (urllib.error.URLError, HTTPException, OSError) as error:
        reason = getattr(error, "reason", error)
        if isinstance(reason, (TimeoutError, socket.timeout)):
            return ProbeResult(False, True, f"accepts connections but does not answer within {timeout_s:g} s")
        return ProbeResult(False, True, f"accepts connections but does not speak OTLP/HTTP ({type(reason).__name__})")


def _probe_grpc(settings: ExportSettings, timeout_s: float) -> ProbeResult:
    import grpc
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub

    parts = urlsplit(settings.endpoint)
    target = parts.netloc
    channel = (
        grpc.secure_channel(target, grpc.ssl_channel_credentials())
        if parts.scheme == "https"
        else grpc.insecure_channel(target)
    )
    try:
        TraceServiceStub(channel).Export(  # type: ignore[no-untyped-call]
            ExportTraceServiceRequest(), timeout=timeout_s, metadata=tuple(settings.headers.items())
        )
        return ProbeResult(True, True, "answers as an OTLP/gRPC receiver")
    except grpc.RpcError as error:
        code = error.code() if hasattr(error, "code") else None
        if code == grpc.StatusCode.UNIMPLEMENTED:
            return ProbeResult(False, True, "is a gRPC server without the OTLP trace service: not an OTLP receiver")
        if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            return ProbeResult(False, True, f"refuses the export ({code.name}): check OTEL_EXPORTER_OTLP_HEADERS")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return ProbeResult(False, True, f"accepts connections but does not answer within {timeout_s:g} s")
        return ProbeResult(False, True, "accepts connections but does not speak OTLP/gRPC")
    finally:
        channel.close()


def probe(settings: ExportSettings, timeout_s: float = 1.0) -> ProbeResult:
    """Send one empty export to the configured endpoint and say what answered."""
    if not _listening(settings.traces_url, timeout_s):
        return ProbeResult(False, False, "does not answer (nothing listens there)")
    if settings.protocol == "grpc":
        return _probe_grpc(settings, timeout_s)
    return _probe_http(settings, timeout_s)
