"""Every ``OTEL_*`` and ``OTEL_CREW_*`` variable otel-crew reads, parsed here and
handed down (the rest of the package asks this module, never the environment);
and ``configure()``.

``export_settings()`` reads the standard OpenTelemetry variables into one
``ExportSettings`` (the CLI's demo and doctor and ``configure()`` all use it),
so a bad value gets the same one-line ``ConfigError`` (a ``ValueError``)
wherever it is met: the variable, the value, and what is allowed.

``configure()`` is for people without a provider of their own. It builds a new
SDK ``TracerProvider`` (never the global one, never one you already have) with
the resource from ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``,
batch export as ``OTEL_TRACES_EXPORTER`` and the ``OTEL_EXPORTER_OTLP_*``
variables say, and CrewAI instrumented into it. A second call with the same
variables and options returns the same provider; with different ones it
re-targets the instrumentation to a new provider and shuts the old one down.

An exporter that cannot reach its collector never slows the pipeline (export
runs on the batch processor's thread) and says so in one log line per outage
(``export_outages``).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from otel_crew.export_outages import OutageReporting, watch_exporter

__all__ = [
    "ConfigError",
    "ExportSettings",
    "OutageReporting",
    "config_problems",
    "configure",
    "export_settings",
    "otlp_exporter",
    "watch_zero_code_exporters",
]

_LOG = logging.getLogger(__name__)

PROTOCOLS = ("grpc", "http/protobuf")
DEFAULT_ENDPOINTS = {"grpc": "http://localhost:4317", "http/protobuf": "http://localhost:4318"}
TRACES_EXPORTERS = ("otlp", "console", "none")
COMPRESSIONS = ("gzip", "deflate", "none")
DEFAULT_TIMEOUT_S = 10.0


class ConfigError(ValueError):
    """A variable with a value otel-crew cannot use; the message is one line."""


@dataclass(frozen=True)
class ExportSettings:
    """What the ``OTEL_*`` variables ask for, checked."""

    exporters: tuple[str, ...]  # from OTEL_TRACES_EXPORTER, without "none"
    protocol: str
    endpoint: str  # as named (or the protocol's default)
    traces_url: str  # where trace exports go: HTTP adds /v1/traces to a generic endpoint
    endpoint_named: bool  # a variable named the endpoint
    headers: Mapping[str, str] = field(repr=False)  # may hold credentials: never printed
    timeout_s: float
    service_name: str  # the SDK's own precedence: OTEL_SERVICE_NAME, then OTEL_RESOURCE_ATTRIBUTES
    sdk_disabled: bool

    @property
    def exports_otlp(self) -> bool:
        return "otlp" in self.exporters


def _pick(environ: Mapping[str, str], *names: str) -> tuple[str, str | None]:
    """(variable, value) of the first of ``names`` that is set and not blank."""
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return name, value
    return names[-1], None


def _protocol(environ: Mapping[str, str]) -> str:
    name, value = _pick(environ, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
    if value is None:
        return "grpc"
    if value == "http/json":
        raise ConfigError(
            f"{name}='http/json': OpenTelemetry's Python OTLP exporter has no JSON encoding; "
            "use http/protobuf (port 4318) or grpc (port 4317)"
        )
    if value not in PROTOCOLS:
        raise ConfigError(f"{name}={value!r}: allowed values are grpc and http/protobuf")
    return value


def _endpoint(environ: Mapping[str, str], protocol: str) -> tuple[str, str, bool]:
    """(endpoint, traces URL, named)."""
    name, value = _pick(environ, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
    if value is None:
        endpoint = DEFAULT_ENDPOINTS[protocol]
        return endpoint, _traces_url(endpoint, protocol, signal_specific=False), False
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number in range
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        valid = False
    if not valid:
        raise ConfigError(
            f"{name}={value!r}: expected a URL with http:// or https://, a host and an optional port, "
            f"such as {DEFAULT_ENDPOINTS[protocol]}"
        )
    return value, _traces_url(value, protocol, signal_specific=name.endswith("_TRACES_ENDPOINT")), True


def _traces_url(endpoint: str, protocol: str, signal_specific: bool) -> str:
    # The OTLP/HTTP exporter adds the signal's path to a generic endpoint only.
    if protocol == "grpc" or signal_specific:
        return endpoint
    return endpoint.rstrip("/") + "/v1/traces"


def _headers(environ: Mapping[str, str]) -> dict[str, str]:
    name, value = _pick(environ, "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
    headers: dict[str, str] = {}
    for number, entry in enumerate((value or "").split(","), start=1):
        if not entry.strip():
            continue
        key, equals, header_value = entry.partition("=")
        if not equals or not key.strip():
            # Header values are often credentials: name the entry, never print it.
            raise ConfigError(f"{name}: entry {number} is not key=value (values not shown); expected k1=v1,k2=v2")
        headers[unquote(key.strip()).lower()] = unquote(header_value.strip())
    return headers


def _timeout(environ: Mapping[str, str]) -> float:
    name, value = _pick(environ, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
    if value is None:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise ConfigError(f"{name}={value!r}: expected a positive number of seconds (the Python exporter's unit)")
    return seconds


def _compression(environ: Mapping[str, str]) -> None:
    name, value = _pick(environ, "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION")
    if value is not None and value.lower() not in COMPRESSIONS:
        raise ConfigError(f"{name}={value!r}: allowed values are gzip, deflate and none")


def _exporters(environ: Mapping[str, str]) -> tuple[str, ...]:
    value = environ.get("OTEL_TRACES_EXPORTER", "").strip() or "otlp"
    chosen = tuple(part.strip().lower() for part in value.split(",") if part.strip())
    unknown = [part for part in chosen if part not in TRACES_EXPORTERS]
    if unknown:
        raise ConfigError(f"OTEL_TRACES_EXPORTER={value!r}: otel-crew knows otlp, console and none (comma-separated)")
    return tuple(part for part in chosen if part != "none")


# -- what the rest of otel-crew reads (handed down from here) -----------------------

CAPTURE_CONTENT_VARIABLE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_SPAN_CONTENT_MODES = frozenset({"SPAN_ONLY", "SPAN_AND_EVENT", "TRUE"})
STATE_DIR_VARIABLE = "OTEL_CREW_STATE_DIR"
STATE_MAX_AGE_VARIABLE = "OTEL_CREW_STATE_MAX_AGE_DAYS"
DEFAULT_STATE_MAX_AGE_DAYS = 7.0
_STATE_SWITCHED_OFF = frozenset({"off", ":memory:"})
DISABLED_INSTRUMENTATIONS_VARIABLE = "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"


def capture_content() -> bool:
    """Whether the standard GenAI variable asks for content (inputs, outputs) on spans."""
    return os.environ.get(CAPTURE_CONTENT_VARIABLE, "").strip().upper() in _SPAN_CONTENT_MODES


def default_state_dir() -> str:
    """The platform's user state directory for otel-crew."""
    home = os.path.expanduser("~")
    if sys.platform == "win32":
        return os.path.join(os.environ.get("LOCALAPPDATA") or os.path.join(home, "AppData", "Local"), "otel-crew")
    if sys.platform == "darwin":
        return os.path.join(home, "Library", "Application Support", "otel-crew")
    return os.path.join(os.environ.get("XDG_STATE_HOME") or os.path.join(home, ".local", "state"), "otel-crew")


def state_dir() -> str | None:
    """Where the open-roots journal lives (``OTEL_CREW_STATE_DIR``, else the default); None when it is off."""
    chosen = os.environ.get(STATE_DIR_VARIABLE, "").strip()
    if chosen.lower() in _STATE_SWITCHED_OFF:
        return None
    return chosen or default_state_dir()


def state_max_age_s() -> float:
    """Seconds after which a dead process's journal entry is dropped, not ended
    (``OTEL_CREW_STATE_MAX_AGE_DAYS``, default 7 days); a bad value is one warning and the default."""
    text = os.environ.get(STATE_MAX_AGE_VARIABLE, "").strip()
    if text:
        try:
            days = float(text)
            if days > 0:
                return days * 86400
        except ValueError:
            pass
        _LOG.warning(
            "otel-crew: %s=%r is not a positive number of days; using %g",
            STATE_MAX_AGE_VARIABLE,
            text,
            DEFAULT_STATE_MAX_AGE_DAYS,
        )
    return DEFAULT_STATE_MAX_AGE_DAYS * 86400


def disabled_instrumentations() -> frozenset[str]:
    """The entry-point names ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` switches off for ``opentelemetry-instrument``."""
    value = os.environ.get(DISABLED_INSTRUMENTATIONS_VARIABLE, "")
    return frozenset(part.strip() for part in value.split(",") if part.strip())


RESOURCE_VARIABLES = ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES")  # read for us by Resource.create()


def _service_name() -> str:
    # Resource.create() reads RESOURCE_VARIABLES with the SDK's own precedence (OTEL_SERVICE_NAME first).
    return str(Resource.create().attributes.get(SERVICE_NAME, "unknown_service"))


_CHECKS: tuple[Callable[[Mapping[str, str]], object], ...] = (
    _exporters,
    _protocol,
    _headers,
    _timeout,
    _compression,
)


def _endpoint_check(environ: Mapping[str, str]) -> object:
    try:
        protocol = _protocol(environ)
    except ConfigError:
        protocol = "grpc"  # reported by its own check
    return _endpoint(environ, protocol)


def config_problems() -> list[str]:
    """One line for each variable with a value otel-crew cannot use (for ``doctor``)."""
    problems = []
    for check in (*_CHECKS, _endpoint_check):
        try:
            check(os.environ)
        except ConfigError as error:
            problems.append(str(error))
    return problems


def export_settings() -> ExportSettings:
    """The checked export settings; ``ConfigError`` names the first bad variable."""
    environ = os.environ
    exporters = _exporters(environ)
    protocol = _protocol(environ)
    endpoint, traces_url, named = _endpoint(environ, protocol)
    _compression(environ)
    return ExportSettings(
        exporters=exporters,
        protocol=protocol,
        endpoint=endpoint,
        traces_url=traces_url,
        endpoint_named=named,
        headers=_headers(environ),
        timeout_s=_timeout(environ),
        service_name=_service_name(),
        sdk_disabled=environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true",
    )


def otlp_exporter(settings: ExportSettings | None = None, timeout_s: float | None = None) -> OutageReporting:
    """OpenTelemetry's OTLP span exporter for the protocol the variables ask for
    (endpoint, headers and compression are read by the exporter itself, from
    the same variables ``export_settings()`` checked)."""
    settings = export_settings() if settings is None else settings
    timeout = settings.timeout_s if timeout_s is None else timeout_s
    exporter: SpanExporter
    if settings.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        exporter = GrpcExporter(timeout=timeout)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        exporter = HttpExporter(timeout=timeout)
    return OutageReporting(exporter, f"{settings.endpoint} ({settings.protocol})", timeout)


def watch_zero_code_exporters() -> None:
    """After ``opentelemetry-instrument`` set up the SDK (the ``opentelemetry_post_instrument`` entry point):
    the distro's OTLP span exporters report an outage in otel-crew's one line, not in their retries."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    provider = trace.get_tracer_provider()
    try:
        settings = export_settings()
    except ConfigError:
        return  # the distro reports its own configuration errors
    target = f"{settings.endpoint} ({settings.protocol})"
    for processor in getattr(getattr(provider, "_active_span_processor", None), "_span_processors", ()):
        exporter = getattr(processor, "span_exporter", None)
        if isinstance(exporter, (GrpcExporter, HttpExporter)):
            watch_exporter(exporter, target, settings.timeout_s)


def _exporters_for(settings: ExportSettings) -> list[SpanExporter]:
    made: list[SpanExporter] = []
    if "console" in settings.exporters:
        made.append(ConsoleSpanExporter())
    if settings.exports_otlp:
        made.append(otlp_exporter(settings))
    return made


class _ConfiguredProvider(TracerProvider):
    """The provider ``configure()`` returns; it knows whether it was shut down."""

    is_shut_down = False

    def shutdown(self) -> None:
        self.is_shut_down = True
        super().shutdown()


class _LastConfigured:
    """What the last ``configure()`` built, so that a second call is idempotent in effect."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.key: tuple[Any, ...] = ()
        self.provider: _ConfiguredProvider | None = None


_LAST = _LastConfigured()


def _call_key(options: Mapping[str, Any]) -> tuple[Any, ...]:
    """The variables and options of a call: equal keys, equal providers."""
    plain = (str, bool, int, float, type(None))
    variables = tuple(sorted((name, value) for name, value in os.environ.items() if name.startswith("OTEL_")))
    chosen = tuple(sorted((name, value if isinstance(value, plain) else id(value)) for name, value in options.items()))
    return variables, chosen


def _instrumented_into(provider: _ConfiguredProvider | None) -> bool:
    """Whether CrewAI is instrumented into ``provider`` (running or not)."""
    from otel_crew.instrumentation.instrumentor import OtelCrewInstrumentor

    instrumentor = OtelCrewInstrumentor()
    return (
        provider is not None
        and instrumentor.is_instrumented_by_opentelemetry
        and getattr(instrumentor, "_provider", None) is provider
    )


def _new_provider(settings: ExportSettings) -> _ConfiguredProvider:
    provider = _ConfiguredProvider(resource=Resource.create())
    for exporter in _exporters_for(settings):
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def configure(instrument: bool = True, **instrument_options: Any) -> TracerProvider:
    """Build and return a tracer provider from the standard variables.

    With ``instrument`` (the default) CrewAI is instrumented into it, with
    ``instrument_options`` passed to ``OtelCrewInstrumentor().instrument``.
    The provider is not made global: pass it where you need it, and call its
    ``shutdown()`` at the end (it also runs at exit).

    Calling it again with the same variables and options returns the same
    provider, still traced. With different ones, CrewAI is re-targeted: it is
    instrumented into a new provider, which is returned, and the previous one
    is shut down (its spans flushed). After the previous provider was shut
    down or uninstrumented, a new one is built. A bad variable raises
    ``ConfigError`` (a ``ValueError``) naming it.
    """
    settings = export_settings()
    if not instrument:
        return _new_provider(settings)
    from otel_crew.instrumentation.instrumentor import OtelCrewInstrumentor

    key = _call_key(instrument_options)
    with _LAST.lock:
        previous = _LAST.provider
        retarget = _instrumented_into(previous)
        if retarget and previous is not None and not previous.is_shut_down and key == _LAST.key:
            _LOG.debug("otel-crew: configure() again with the same settings returns the same provider")
            return previous
        instrumentor = OtelCrewInstrumentor()
        provider = _new_provider(settings)
        if retarget:
            instrumentor.uninstrument()  # re-targeted to the new provider
        if instrumentor.is_instrumented_by_opentelemetry:
            _LOG.warning(
                "otel-crew: configure(): CrewAI is already instrumented into another tracer provider, so this one "
                "gets no crew spans; call OtelCrewInstrumentor().uninstrument() before configure()"
            )
        else:
            instrumentor.instrument(tracer_provider=provider, **instrument_options)
        _LAST.key, _LAST.provider = key, provider
    if retarget and previous is not None and not previous.is_shut_down:
        previous.shutdown()
    return provider
