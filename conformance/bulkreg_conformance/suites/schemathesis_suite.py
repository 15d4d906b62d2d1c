"""Schemathesis suite: schemathesis' own checks over the shipped openapi.json, over real HTTP.

It runs schemathesis' engine (the code path of ``st run``: examples, coverage and fuzzing phases;
response schema, status codes, content type, headers, negative data rejected, positive data
accepted, missing ``Authorization`` answered 401) against ``POST /devices``, configured for this
API (docs: notes on schemathesis 4, §3 and §7):

- a valid payload whose entries fail gets 400 with a BulkRegistryOperationResult body by design,
  so ``positive_data_acceptance`` accepts 400, and our own ``bulk_result_body`` check (an
  ``after_call`` hook scoped to this schema) requires that 400 to carry the result body unless
  the offline validator rejects the request as a whole; 413 (TooManyDevices) is a rejection;
- no stray methods (``unexpected-methods = []``), no stateful phase, no example database, one
  worker and the run's seed: the same seed sends the same requests;
- every device id in a request is moved into the run's prefix by a ``before_call`` hook
  (``map_body`` hooks skip the coverage phase), then checked by the client's prefix guard and
  remembered for the run's cleanup; each request goes through the client's transport
  (``RailsAdapter``: rate limit, ``--max-requests``, one total deadline, capped body reads),
  mounted on every session schemathesis makes while the suite runs (its probes' too), and
  trusts the run's ``--ca-cert``;
- SAS tokens come from the run's client (``schema.auth()``, ``retry_on=[]``: a 401 is an answer,
  not a reason to re-sign);
- no ``schemathesis.toml`` is read and nothing is written to the working directory.

Schemathesis reads the *service view* of openapi.json (``service_view.service_openapi``): only the
constraints the service must enforce, unknown members allowed, unset members nullable, so its
negative phase sends only bodies the service must reject. Each schemathesis failure becomes a
runner failure named ``schemathesis:<check>`` with that check's evidence
(``checks.SCHEMATHESIS_EVIDENCE``) and a curl reproducer whose token is ``$SAS``.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from bulkreg_conformance import decisions
from bulkreg_conformance.answers import error_code, has, member, reported_errors
from bulkreg_conformance.checks import SCHEMATHESIS_PREFIX, evidence_of
from bulkreg_conformance.client import ID_PATTERN, KEEP_BYTES, Exchange, RailsAdapter, bulk_ids
from bulkreg_conformance.evidence import Evidence, weakest
from bulkreg_conformance.expectation import accept_evidence
from bulkreg_conformance.oracle import API_VERSIONS
from bulkreg_conformance.service_view import service_openapi
from bulkreg_conformance.session import ID_MAX, Failure
from bulkreg_conformance.suites import SuiteError, hypothesis_home

if TYPE_CHECKING:
    from schemathesis.core.transport import Response
    from schemathesis.engine.recorder import ScenarioRecorder
    from schemathesis.generation.case import Case
    from schemathesis.schemas import BaseSchema

    from bulkreg_conformance.session import Session as Context

__all__ = ["OPERATIONS", "run"]

OPERATIONS = (("POST", "/devices"),)  # the operation under test; reads are the other suites'
MAX_TIME = 20.0  # seconds the default run gives schemathesis at most
WIND_DOWN = 2.0  # seconds the running scenario gets to report once the suite's time is up
DEFAULT_EXAMPLES = 25  # the CLI's default --max-examples
CUSTOM = "bulk_result_body"
_REDACTED = "<redacted>"
_ID_IN_TEXT = re.compile(r'("id"\s*:\s*")((?:[^"\\]|\\.)*)(")')
# schemathesis' defaults plus what this API answers by design (facts §3.1): a valid request
# whose entries fail gets 400; more than 100 entries get 413.
_POSITIVE = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]
_NEGATIVE = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429",
             "5xx"]


def run(ctx: Context) -> bool:
    """Schemathesis' phases until they end or the suite's time is up; True when they ended."""
    if ctx.out_of_time():
        return False
    hypothesis_home()
    _known_codecs()
    schema = _schema(ctx)
    with _prefixing(ctx, schema) as adapter:
        return _execute(ctx, schema, adapter)


# -- configuration ---------------------------------------------------------------------------

# What hypothesis' characters(codec=...) computes by encoding all 1.1M code points (about 200 MiB
# at peak and a second or two, in every run: the run's hypothesis home is new each time) unless
# its cache holds the answer: [encodable intervals, intervals that do not round-trip].
_CODECS = {"utf-8": [[[0, 0xD7FF], [0xE000, 0x10FFFF]], []], "ascii": [[[0, 0x7F]], []]}


def _known_codecs() -> None:
    """Put the codec tables schemathesis needs (strings, headers) into hypothesis' cache."""
    import gzip  # noqa: PLC0415

    with contextlib.suppress(Exception):  # a cache hypothesis no longer reads: it computes
        from hypothesis.internal.charmap import charmap_file  # noqa: PLC0415

        for codec, table in _CODECS.items():
            path = charmap_file(f"codec-v2-{codec}")
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                with gzip.GzipFile(path, "wb", mtime=1) as out:
                    out.write(json.dumps(table).encode())


def _config(ctx: Context) -> Any:
    from schemathesis.config import SchemathesisConfig  # noqa: PLC0415 - heavy, conform only

    # No max-time: with one, schemathesis repeats fuzzing until it runs out; without, each
    # phase runs once and the suite stops the stream at its own deadline (_execute).
    data: dict[str, Any] = {
        "seed": ctx.seed,
        "color": False,
        "cache": {"enabled": False},
        "base-url": ctx.client.endpoint,
        "workers": 1,
        "request-timeout": 30,  # the client's transport enforces its own total deadline
        "tls-verify": ctx.client.verify,
        # the recorder keeps only the start of a long answer (its checks see what was read)
        "output": {"truncation": {"max-recorded-payload-size": KEEP_BYTES}},
        "warnings": False,
        "generation": {"database": "none", "max-examples": ctx.settings.max_examples},
        "phases": {"coverage": {"unexpected-methods": []}, "stateful": {"enabled": False}},
        "checks": {
            "positive_data_acceptance": {"expected-statuses": _POSITIVE},
            "negative_data_rejection": {"expected-statuses": _NEGATIVE},
            # a generated body that names an already-deleted device is not a stale reference
            "use_after_free": {"enabled": False},
            "ensure_resource_availability": {"enabled": False},
        },
    }
    return SchemathesisConfig.from_dict(data)


def _schema(ctx: Context) -> BaseSchema:
    import schemathesis  # noqa: PLC0415 - heavy, conform only

    loaded = schemathesis.openapi.from_dict(service_openapi(), config=_config(ctx))
    schema: BaseSchema = loaded
    for method, path in OPERATIONS:
        schema = schema.include(method=method, path=path)
    client = ctx.client

    @schema.auth(retry_on=[])
    class _Sas:
        """The run's own SAS token (re-signed by the client before it expires)."""

        def get(self, case: Case[Any], context: Any) -> str:
            return client.token()

        def set(self, case: Case[Any], data: str, context: Any) -> None:
            if case.headers is None:
                from requests.structures import CaseInsensitiveDict  # noqa: PLC0415

                case.headers = CaseInsensitiveDict()
            case.headers["Authorization"] = data

    @schema.hook
    def after_call(context: Any, case: Case[Any], response: Response) -> None:
        _bulk_result_body(ctx, case, response)

    return schema


# -- ids inside the prefix -------------------------------------------------------------------


def scoped_id(prefix: str, device_id: str) -> str:
    """``device_id`` moved into ``prefix`` without changing whether it is a valid id.

    An empty id stays empty (it names no device); a valid-length id stays within the id limit
    by dropping id characters the pattern allows (never one it forbids); an over-long id stays
    over-long.
    """
    if not device_id or device_id.startswith(prefix):
        return device_id
    excess = len(prefix) + len(device_id) - ID_MAX
    if len(device_id) > ID_MAX or excess <= 0:
        return prefix + device_id
    kept = list(device_id)
    for index in range(len(kept) - 1, -1, -1):
        if excess == 0:
            break
        if ID_PATTERN.match(kept[index]) and len(kept) > 1:
            del kept[index]
            excess -= 1
    return (prefix + "".join(kept))[:ID_MAX] if excess else prefix + "".join(kept)


def _scope_value(prefix: str, value: Any) -> Any:
    if isinstance(value, list):
        return [_scope_value(prefix, v) if isinstance(v, dict) else v for v in value]
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return {**value, "id": scoped_id(prefix, value["id"])}
    return value


def _scope_text(prefix: str, text: str) -> str:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        # not JSON: still rewrite anything that reads like an id, for a lenient endpoint
        return _ID_IN_TEXT.sub(lambda m: m.group(1) + scoped_id(prefix, m.group(2)) + m.group(3),
                               text)
    return json.dumps(_scope_value(prefix, value), ensure_ascii=False)


def scope_case(prefix: str, case: Case[Any]) -> None:
    """Rewrite every device id of ``case`` (body and path) into ``prefix``, in place."""
    if isinstance(case.path_parameters, dict) and isinstance(case.path_parameters.get("id"), str):
        case.path_parameters = {**case.path_parameters,
                                "id": scoped_id(prefix, case.path_parameters["id"])}
    body = case.body
    if isinstance(body, (list, dict)):
        case.body = _scope_value(prefix, body)
    elif isinstance(body, bytes):
        with contextlib.suppress(UnicodeDecodeError):
            case.body = _scope_text(prefix, body.decode("utf-8")).encode("utf-8")
    elif isinstance(body, str):
        case.body = _scope_text(prefix, body)


def _case_ids(case: Case[Any]) -> list[str]:
    ids = []
    if isinstance(case.path_parameters, dict) and isinstance(case.path_parameters.get("id"), str):
        ids.append(case.path_parameters["id"])
    body = case.body
    if isinstance(body, (list, dict)):
        with contextlib.suppress(TypeError, ValueError):
            body = json.dumps(body, ensure_ascii=False)
    if isinstance(body, (str, bytes)):
        ids += bulk_ids(body)
    return [i for i in ids if i]


@contextlib.contextmanager
def _prefixing(ctx: Context, schema: BaseSchema) -> Iterator[RailsAdapter]:
    """A ``before_call`` hook for this schema's cases only, removed afterwards.

    ``before_call`` exists only in schemathesis' global scope, so the hook checks that a case is
    one of ours and the ``with`` block unregisters it (other schemas in the process are not
    touched).
    """
    import schemathesis  # noqa: PLC0415
    from schemathesis.hooks import GLOBAL_HOOK_DISPATCHER  # noqa: PLC0415

    raw = schema.raw_schema

    def before_call(context: Any, case: Case[Any], kwargs: dict[str, Any]) -> None:
        if case.operation.schema.raw_schema is not raw:
            return
        scope_case(ctx.client.prefix, case)
        ids = _case_ids(case)
        ctx.client.check_ids(ids)  # PrefixViolation: the request is not sent
        ctx.client.track(ids)  # BudgetExceeded: nor is it when its cleanup is unaffordable

    schemathesis.hook(before_call)
    try:
        with _rails(ctx) as adapter:
            yield adapter
    finally:
        GLOBAL_HOOK_DISPATCHER.unregister(before_call)


@contextlib.contextmanager
def _rails(ctx: Context) -> Iterator[RailsAdapter]:
    """Every request schemathesis sends goes through the client's transport.

    Schemathesis builds its sessions itself (one per worker, extra ones for its probes and some
    checks), all ``SameHostRedirectsSession``, and has no hook that sees them: while the suite
    runs, that class mounts the client's adapter on each new session.
    """
    import requests  # noqa: PLC0415
    from schemathesis.transport.requests import SameHostRedirectsSession  # noqa: PLC0415

    adapter = RailsAdapter(ctx.client)

    def init(session: requests.Session) -> None:
        requests.Session.__init__(session)
        session.mount("http://", adapter)
        session.mount("https://", adapter)

    SameHostRedirectsSession.__init__ = init  # type: ignore[method-assign,assignment]
    try:
        yield adapter
    finally:
        del SameHostRedirectsSession.__init__  # requests.Session's again
        adapter.close()


# -- running and reporting -------------------------------------------------------------------


def _execute(ctx: Context, schema: BaseSchema, adapter: RailsAdapter) -> bool:
    """Run schemathesis' engine and tally its checks until the suite's time is up.

    Events come per scenario, which may last long, so a timer ends the suite on time: it closes
    the transport (new requests are refused at once, so the running scenario ends quickly and
    still reports the checks it made), and the stream is stopped at the next scenario's end, or
    WIND_DOWN seconds later (the running scenario's checks are then lost).
    """
    from schemathesis.engine import events, from_schema  # noqa: PLC0415

    # the default run gives schemathesis a share of the 60 s; --max-examples above it, the rest
    share = MAX_TIME if ctx.settings.max_examples <= DEFAULT_EXAMPLES else float("inf")
    stream = from_schema(schema).execute()

    timers: list[threading.Timer] = []
    cut: list[bool] = []  # the suite's time ran out before schemathesis' phases ended
    skipped: list[str] = []  # errors schemathesis met in one operation (it went on)

    def later(seconds: float, action: Callable[[], None]) -> None:
        timer = threading.Timer(max(0.0, seconds), action)
        timer.daemon = True
        timers.append(timer)
        timer.start()

    def close() -> None:
        cut.append(True)
        adapter.closed = True
        later(WIND_DOWN, stream.stop)

    later(min(ctx.deadline - _now(), share), close)
    try:
        for event in stream:
            if isinstance(event, events.ScenarioFinished):
                _record(ctx, event.recorder)
                if adapter.closed:
                    stream.stop()
            elif isinstance(event, events.Interrupted) and ctx.client.interrupted:
                # schemathesis swallows Ctrl-C/SIGTERM; the runner must clean up (its own stop,
                # on time or budget, is no interruption)
                raise KeyboardInterrupt
            elif isinstance(event, (events.FatalError, events.NonFatalError)):
                if ctx.client.stopped:  # our own budget, surfacing through schemathesis
                    raise ctx.client.stopped
                if adapter.closed:  # the suite's own time, surfacing through schemathesis
                    stream.stop()
                    continue
                if isinstance(event, events.NonFatalError):  # one operation: the rest go on
                    skipped.append(_error_text(event))
                    continue
                raise SuiteError(f"schemathesis could not run: {_error_text(event)}")
            if ctx.client.stopped:
                stream.stop()
    finally:
        for timer in timers:
            timer.cancel()
        adapter.closed = True
        stream.stop()  # also when leaving early: its workers send nothing more
    if ctx.client.stopped:  # --max-requests or the run's time: an error of the run
        raise ctx.client.stopped
    if skipped:  # schemathesis' own limits (a schema it cannot generate from): no verdict
        raise SuiteError(f"schemathesis could not test every operation: {skipped[0]}")
    return not cut


def _record(ctx: Context, recorder: ScenarioRecorder) -> None:
    """Tally every check result of one scenario; one failure per distinct problem."""
    seen: set[tuple[str, str, str]] = set()
    for case_id, nodes in recorder.checks.items():
        for node in nodes:
            name = SCHEMATHESIS_PREFIX + node.name
            if node.failure_info is None:
                ctx.passed(name)
                continue
            failure = node.failure_info.failure
            if _throttled(recorder, case_id):
                continue  # a 429 the client's retries could not get past: no verdict
            key = (name, str(getattr(failure, "title", "")), str(failure.message))
            if key not in seen:
                seen.add(key)
                ctx.fail(_failure(ctx, recorder, case_id, name, failure))


def _failure(ctx: Context, recorder: ScenarioRecorder, case_id: str, name: str,
             failure: Any) -> Failure:
    exchange = _exchange(ctx, recorder, case_id)
    title = getattr(failure, "title", "") or name
    message = ctx.client.redactor.text(
        f"{failure.operation or recorder.label}: {title}: {failure.message}".strip())
    payload = exchange.request_body.decode("utf-8", "replace") if exchange else None
    evidence = _evidence(name, exchange)
    return Failure(name, evidence.level, message, suite="schemathesis",
                   payload=payload, exchanges=[exchange] if exchange else [],
                   replay=_replay(ctx, name, payload, ctx.client.api_version),
                   basis=evidence.basis)


def _evidence(name: str, exchange: Exchange | None) -> Evidence:
    """The evidence of one schemathesis failure's claim. Schema-violating entries answered with
    a result whose errors fail them were rejected: only the 200 is in question (decision
    per-entry-status)."""
    level = Evidence(evidence_of(name) or "contract")
    if name == SCHEMATHESIS_PREFIX + "ignored_auth" and exchange is not None and \
            (exchange.status in {404, 405} or error_code(exchange) == "InvalidProtocolVersion"):
        # a route or api-version refused before the token is looked at (decision auth-first)
        return weakest(level, decisions.evidence("auth-first"))
    if name == SCHEMATHESIS_PREFIX + "negative_data_rejection" and exchange is not None:
        body = exchange.json()
        if isinstance(body, dict) and reported_errors(body) and \
                member(body, "isSuccessful") is False:
            return weakest(level, decisions.evidence("per-entry-status"))
    return level


def _throttled(recorder: ScenarioRecorder, case_id: str) -> bool:
    """A 429 or 503 the client's retries could not get past: throttling or unavailability,
    no verdict on the request (as for the kit's own calls)."""
    interaction = recorder.interactions.get(case_id)
    response = interaction.response if interaction is not None else None
    return response is not None and response.status_code in {429, 503}


def _replay(ctx: Context, name: str, payload: str | None,
            version: str) -> dict[str, Any] | None:
    if payload is None:
        return None
    return {"version": 2, "check": name, "rule": None, "prefix": ctx.client.prefix,
            "api_version": version, "payload": payload,
            "steps": [{"raw": payload, "rule": None, "readback": True, "api_version": version}]}


def _exchange(ctx: Context, recorder: ScenarioRecorder, case_id: str) -> Exchange | None:
    """The recorded request/response as the runner's Exchange (the token redacted, echoes of
    it scrubbed, the body capped)."""
    interaction = recorder.interactions.get(case_id)
    if interaction is None:
        return None
    request, response = interaction.request, interaction.response
    headers = {k: (_REDACTED if k.lower() == "authorization" else ", ".join(v))
               for k, v in request.headers.items()}
    if response is None:
        return Exchange(request.method, request.uri, headers, request.body or b"", 0, {}, b"",
                        0.0, "sas")
    scrub = ctx.client.redactor
    content = scrub.bytes(response.content)
    length = _header(response.headers, "content-length")
    sent = int(length) if length.isdigit() else len(content)  # the recorder keeps only a start
    return Exchange(request.method, request.uri, headers, request.body or b"",
                    response.status_code,
                    {scrub.text(k): scrub.text(", ".join(v)) for k, v in response.headers.items()},
                    content, response.elapsed, "sas", truncated=sent > len(content),
                    size=max(sent, len(content))).kept()


# -- our own check, scoped to this schema ----------------------------------------------------


def _bulk_result_body(ctx: Context, case: Case[Any], response: Response) -> None:
    """A 400 to a request the offline validator accepts as a whole should be the per-entry
    result (BulkRegistryOperationResult), not a request-level rejection; where the decisions
    leave the choice open (an entry that fails on its own, an omitted importMode…: decision
    request-or-entry and the others :func:`accept_evidence` weighs), either answer passes."""
    if case.method.upper() != "POST" or response.status_code != 400 or _negative(case):
        return
    content_type = _header(response.headers, "content-type")
    if "json" not in content_type.lower():
        return  # content_type_conformance reports it
    from bulkreg_validator import RULES, validate  # noqa: PLC0415

    sent = response.request.body or b""
    body = sent.encode("utf-8") if isinstance(sent, str) else sent
    if not isinstance(body, bytes):
        return  # a streamed body: not one schemathesis sends for JSON
    url = response.request.url or ""
    versions = re.findall(r"[?&]api-version=([^&]*)", url)
    if len(versions) != 1 or versions[0] not in API_VERSIONS:
        return  # rejected for its query, whatever the body
    version = versions[0]
    report = validate(body, api_version=version)
    if any(RULES[f.rule].scope == "request" for f in report.errors):
        ctx.passed(SCHEMATHESIS_PREFIX + CUSTOM)
        return
    try:
        got = json.loads(response.content)
    except (ValueError, RecursionError):
        got = None
    name = SCHEMATHESIS_PREFIX + CUSTOM
    level = weakest(Evidence(evidence_of(name) or "inferred"),
                    accept_evidence(report, _parsed(body), version))
    if has(got, "isSuccessful") or level.level == "open":
        ctx.passed(name)
        return
    scrub = ctx.client.redactor
    exchange = Exchange("POST", url, {}, body, 400,
                        {scrub.text(k): scrub.text(", ".join(v))
                         for k, v in response.headers.items()},
                        scrub.bytes(response.content), response.elapsed, "sas").kept()
    payload = body.decode("utf-8", "replace")
    ctx.fail(Failure(name, level.level, "a request the validator accepts as a whole was "
                     "rejected as a whole (400 without a BulkRegistryOperationResult body)",
                     suite="schemathesis", payload=payload, exchanges=[exchange],
                     replay=_replay(ctx, name, payload, version), basis=level.basis))


def _parsed(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return None


def _negative(case: Case[Any]) -> bool:
    meta = case.meta
    if meta is None:
        return False
    return meta.generation.mode.is_negative or any(
        info.mode.is_negative for info in meta.components.values())


def _header(headers: dict[str, list[str]], name: str) -> str:
    return ", ".join(next((v for k, v in headers.items() if k.lower() == name), []))


def _now() -> float:
    import time  # noqa: PLC0415

    return time.monotonic()


def _error_text(event: Any) -> str:
    error = getattr(event, "value", None) or getattr(event, "exception", None) or event
    return " ".join(str(error).split())[:300]
