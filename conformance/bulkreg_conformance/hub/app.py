"""The reference hub's HTTP face: a WSGI app (werkzeug) in front of the registry model.

Owns routing, api-version checks, SharedAccessSignature auth and permissions (checked before the
body is read), the registry lock (requests run one at a time, so two IfMatchETag writers can
never both win), persisting a plan before answering, the fault knobs
(throttling, latency, injected 5xx) and the admin endpoint ``/_bulkreg/admin``. What an operation
answers is the model's business (``model.py``); this module only carries it over HTTP.
"""

from __future__ import annotations

import functools
import gc
import random
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import orjson
from werkzeug.wrappers import Request, Response

import bulkreg_schema
from bulkreg_conformance.oracle import API_VERSIONS, Changes, Plan, Registry, check_bulk, reads
from bulkreg_conformance.sas import Policy, SasError, verify_token

from .bounds import refusal
from .jobs import Jobs
from .store import MemoryStore, Store

__all__ = ["ADMIN_PATH", "Faults", "Hub"]

ADMIN_PATH = "/_bulkreg/admin"
MAX_BODY = 16 * 1024 * 1024  # 100 entries with full twins stay far below this
_READ = frozenset({"RegistryRead", "RegistryReadWrite"})
_WRITE = frozenset({"RegistryReadWrite"})
# decision: twin endpoints need ServiceConnect (DOC-TW); the bulk call, updateTwin* included,
# needs RegistryReadWrite, decided before the body is read (facts §4.1, §8).
_TWIN = frozenset({"ServiceConnect"})
_ADMIN = frozenset({"RegistryReadWrite", "ServiceConnect"})

_TOKEN_CACHE = 1024  # not a contract limit
_EXPIRY = re.compile(r"[ &]se=([0-9]+)(?:&|$)")

WSGIEnviron = dict[str, Any]
StartResponse = Callable[..., Any]


@dataclass
class Faults:
    """Fault knobs for testing clients; all off by default."""

    throttle_rps: float = 0.0  # > 0: requests beyond this many per second get 429
    latency_ms: float = 0.0  # added to every data-plane request
    error_rate: float = 0.0  # fraction of data-plane requests answered 500 ServerError
    seed: int | None = None  # for the error-rate draws

    def update(self, values: dict[str, Any]) -> None:
        known = {f.name: f.type for f in fields(self)}
        for name, value in values.items():
            if name not in known:
                raise ValueError(f"unknown fault knob {name!r}; known: {', '.join(known)}")
            if name != "seed" and (not isinstance(value, int | float) or value < 0):
                raise ValueError(f"fault knob {name} must be a number >= 0")
            if name == "error_rate" and value > 1:
                raise ValueError("error_rate is a fraction between 0 and 1")
            setattr(self, name, value)


class _Throttle:
    """A fixed one-second window: the simplest counter that yields 429 beyond N req/s."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._window = 0
        self._count = 0

    def over(self, limit: float, now: float) -> bool:
        with self._lock:
            window = int(now)
            if window != self._window:
                self._window, self._count = window, 0
            self._count += 1
            return self._count > limit


class _Refused(Exception):
    """An early answer (auth, api-version, faults) before the body is read."""

    def __init__(self, plan: Plan) -> None:
        super().__init__(plan.status)
        self.plan = plan


class Hub:
    """The WSGI application of ``bulkreg serve``."""

    def __init__(self, *, host_name: str, policies: dict[str, Policy],
                 store: Store | None = None, faults: Faults | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.host_name = host_name
        self.policies = policies
        self.store: Store = store or MemoryStore()
        self.faults = faults or Faults()
        self.clock = clock
        # Held for a whole request (``respond``) and by every registry operation (``_run``,
        # also from outside a request): reentrant for both. One request at a time: the work is
        # CPU-bound under one GIL, so two requests side by side would finish together, late;
        # one after the other the first answer leaves at once. The latency fault, a wait that
        # computes nothing, gives it away meanwhile. No order among waiters is promised.
        self.lock = threading.RLock()
        self.registry = self.store.load()
        self._throttle = _Throttle()
        self._random = random.Random(self.faults.seed)
        self._tokens: dict[tuple[str, str], tuple[Policy, int]] = {}
        # > 0 (only `bulkreg serve`, which owns its process): gc.freeze() every N registry
        # writes. Records are acyclic and long-lived; without it every full collection scans
        # the whole registry again (~0.5 ms per 100-device request on a growing registry).
        self.freeze_gc_every = 0
        self._writes = 0
        self.jobs = Jobs(self)  # import/export jobs (hub/jobs.py); recovers a --db hub's jobs

    # -- WSGI -----------------------------------------------------------------------------------

    def __call__(self, environ: WSGIEnviron, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        request.max_content_length = MAX_BODY
        try:
            response = self.respond(request)
        except Exception as exc:  # a hub bug: the client gets IoT Hub's 500, the log one line
            _log_failure(request, exc)
            response = self._response(self.registry.error(
                500, "ServerError", "the hub failed on this request; see its log"))
        return response(environ, start_response)

    def error_body(self, status: int, code: str, text: str) -> tuple[list[tuple[str, str]],
                                                                      bytes]:
        """IoT Hub's generic error answer as headers and body (for the HTTP server's own
        refusals: framing, oversize bodies)."""
        plan = self.registry.error(status, code, text)
        return list(plan.headers.items()), orjson.dumps(plan.body)

    def respond(self, request: Request) -> Response:
        """The answer to one request, computed under the hub's lock (see ``__init__``)."""
        with self.lock:
            return self._respond(request)

    def _respond(self, request: Request) -> Response:
        try:
            # decision: the token first. An unauthenticated caller gets 401 for any route and
            # any api-version, so it cannot map which routes and versions exist; which policy
            # rights the route needs is checked once the route is known.
            policy = self._authenticate(request)
            handler, args, permissions = self._route(request)
            api_version = self._api_version(request, handler)
            self._authorize(policy, permissions)
            if handler != self._admin:
                self._inject_faults()
            plan = handler(request, api_version, *args)
        except _Refused as refused:
            return self._response(refused.plan)
        # the server hands over only whole requests: a body left unread by an early refusal
        # is simply dropped, never taken for the next request.
        return self._response(plan)

    def _response(self, plan: Plan) -> Response:
        body = b"" if plan.body is None else orjson.dumps(plan.body)
        response = Response(body, status=plan.status, headers=plan.headers)
        if plan.status == 429:
            response.headers["Retry-After"] = "1"
        return response

    # -- routing --------------------------------------------------------------------------------

    Handler = Callable[..., Plan]

    def _route(self, request: Request) -> tuple[Handler, tuple[str, ...], frozenset[str]]:
        # a trailing slash is the same resource: Node's Registry.list() sends GET /devices/
        parts = request.path.strip("/").split("/")
        method = request.method
        if not all(parts):
            raise self._not_found(request)
        third = parts[2] if len(parts) > 2 and parts[0] != "_bulkreg" else None
        key = (parts[0], len(parts), third)
        if key == ("devices", 2, None) and parts[1] == "query":
            # POST /devices/query; a device named query stays reachable with GET/PUT/DELETE
            key = ("devices", 2, "query")
        elif parts[0] in ("statistics", "_bulkreg") and \
                parts[1:2] != [{"statistics": "devices", "_bulkreg": "admin"}[parts[0]]]:
            raise self._not_found(request)
        methods = self._table.get(key)
        if key == ("devices", 2, "query") and method != "POST":
            methods = self._table[("devices", 2, None)]
        if methods is None:
            raise self._not_found(request)
        if method not in methods:
            raise _Refused(self.registry.error(405, "GenericMethodNotAllowed",
                                               f"{method} is not allowed on {request.path}"))
        handler, permissions = methods[method]
        return handler, tuple(parts[1:]), permissions

    def _not_found(self, request: Request) -> _Refused:
        return _Refused(self.registry.error(404, "GenericNotFound",
                                            f"no such resource: {request.path}"))

    @functools.cached_property
    def _table(self) -> dict[tuple[str, int, str | None],
                             dict[str, tuple[Hub.Handler, frozenset[str]]]]:
        """(first segment, segments, third segment) -> method -> (handler, permissions)."""
        return {
            ("devices", 1, None): {"POST": (self._bulk, _WRITE), "GET": (self._list, _READ)},
            ("devices", 2, None): {"GET": (self._get_device, _READ),
                                   "PUT": (self._put_device, _WRITE),
                                   "DELETE": (self._delete_device, _WRITE)},
            ("devices", 2, "query"): {"POST": (self._query, _READ)},
            ("devices", 3, "modules"): {"GET": (self._list_modules, _READ)},
            ("devices", 4, "modules"): {"GET": (self._get_module, _READ),
                                        "PUT": (self._put_module, _WRITE),
                                        "DELETE": (self._delete_module, _WRITE)},
            ("statistics", 2, None): {"GET": (self._statistics, _READ)},
            ("twins", 2, None): {"GET": (self._get_twin, _TWIN),
                                 "PUT": (self._replace_twin, _TWIN),
                                 "PATCH": (self._update_twin, _TWIN)},
            ("twins", 4, "modules"): {"GET": (self._get_module_twin, _TWIN),
                                      "PUT": (self._replace_twin, _TWIN),
                                      "PATCH": (self._update_twin, _TWIN)},
            # import/export jobs: /jobs, /jobs/create, /jobs/{id} (decision: RegistryReadWrite
            # for all four, reads included: a job record carries the caller's SAS URIs)
            ("jobs", 1, None): {"GET": (self._jobs, _WRITE)},
            ("jobs", 2, None): {"GET": (self._jobs, _WRITE), "POST": (self._jobs, _WRITE),
                                "DELETE": (self._jobs, _WRITE)},
            ("_bulkreg", 2, None): {"GET": (self._admin, _ADMIN), "POST": (self._admin, _ADMIN)},
            ("_bulkreg", 3, None): {"POST": (self._admin, _ADMIN)},
        }

    def _api_version(self, request: Request, handler: Handler) -> str:
        version = request.args.get("api-version")
        if handler == self._admin:
            return version or API_VERSIONS[0]
        if version not in API_VERSIONS:
            shown = "missing" if version is None else "not supported"
            raise _Refused(self.registry.error(
                400, "InvalidProtocolVersion",
                f"BadRequest: api-version is {shown}; supported: {', '.join(API_VERSIONS)}"))
        return version

    def _verified(self, header: str, path: str) -> Policy:
        """The policy of a token, verified once per (token, path) and then cached until the
        token expires (a client reuses one token for many calls; its HMAC and URL decoding
        need not run again). A policy replaced on the hub invalidates its cached tokens."""
        now = self.clock()
        hit = self._tokens.get((header, path))
        if hit is not None and hit[1] > now and self.policies.get(hit[0].name) is hit[0]:
            return hit[0]
        policy = verify_token(header, policies=self.policies, host=self.host_name, path=path,
                              now=now)
        expiry = _EXPIRY.search(header)
        if expiry is not None:  # verify_token checked it is all digits
            if len(self._tokens) >= _TOKEN_CACHE:
                self._tokens.clear()  # many distinct tokens: start over rather than grow
            self._tokens[(header, path)] = (policy, int(expiry.group(1)))
        return policy

    def _authenticate(self, request: Request) -> Policy:
        header = request.headers.get("Authorization")
        try:
            if header is None:
                raise SasError("no Authorization header")
            return self._verified(header, request.path)
        except SasError as exc:
            raise _Refused(self.registry.error(401, "IotHubUnauthorizedAccess",
                                               f"Unauthorized: {exc.reason}")) from None

    def _authorize(self, policy: Policy, needed: frozenset[str]) -> None:
        granted = needed <= policy.permissions if needed is _ADMIN else \
            bool(needed & policy.permissions)
        if not granted:
            raise _Refused(self.registry.error(
                401, "IotHubUnauthorizedAccess",
                f"Unauthorized: policy {policy.name} lacks {' or '.join(sorted(needed))}"))

    def _inject_faults(self) -> None:
        """Throttling, latency (the lock given away while it waits), injected 5xx."""
        faults = self.faults
        if faults.throttle_rps > 0 and self._throttle.over(faults.throttle_rps, time.time()):
            raise _Refused(self.registry.error(
                429, "ThrottlingException",
                "The request has been throttled. Wait 1 seconds and try again."))
        if faults.latency_ms > 0:
            self.lock.release()  # held once, by respond: other requests run meanwhile
            try:
                time.sleep(faults.latency_ms / 1000)
            finally:
                self.lock.acquire()
        if faults.error_rate > 0 and self._random.random() < faults.error_rate:
            raise _Refused(self.registry.error(500, "ServerError",
                                               "injected fault (bulkreg error_rate)"))

    # -- the registry under its lock ------------------------------------------------------------

    def _run(self, operation: Callable[[Registry], Plan]) -> Plan:
        """Plan, persist, adopt: one at a time, persisted before the answer leaves."""
        with self.lock:
            plan = operation(self.registry)
            if plan.changes.records:
                try:
                    self.store.write(plan.changes)
                except Exception as exc:  # disk full, I/O error: refuse, keep the old state
                    return self.registry.error(500, "ServerError",
                                               f"the store failed: {type(exc).__name__}")
            self.registry.adopt(plan.changes)
            if plan.changes.records and self.freeze_gc_every:
                self._writes += 1
                if self._writes % self.freeze_gc_every == 0:
                    gc.freeze()  # O(1): moves every tracked object out of future scans
            return plan

    def _body(self, request: Request) -> bytes:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise _Refused(self.registry.error(413, "MessageTooLarge",
                                               f"the body exceeds {MAX_BODY} bytes"))
        return request.get_data(cache=False)

    def _bulk(self, request: Request, api_version: str) -> Plan:
        body = self._body(request)
        refused = refusal(body, bulkreg_schema.contract().max_entries)  # before any entry
        if refused is not None:
            return self.registry.error(413, *refused)
        checked = check_bulk(body, api_version=api_version)  # pure: unlocked
        # A pause for the server's event loop: it waits for the GIL to take in the next
        # request while this thread computes, up to a switch interval each time (a --db hub
        # gives it way in its fsync; an in-memory one would not, and ran slower).
        time.sleep(0)
        return self._run(lambda reg: reg.plan_bulk(checked))

    def _get_device(self, request: Request, api_version: str, device_id: str) -> Plan:
        return self._run(lambda reg: reg.get_device(device_id, api_version=api_version))

    def _get_module(self, request: Request, api_version: str, device_id: str, _: str,
                    module_id: str) -> Plan:
        return self._run(lambda reg: reads.get_module(reg, device_id, module_id,
                                                      api_version=api_version))

    def _put_module(self, request: Request, api_version: str, device_id: str, _: str,
                    module_id: str) -> Plan:
        body, if_match = self._body(request), request.headers.get("If-Match")
        return self._run(lambda reg: reads.put_module(reg, device_id, module_id, body, if_match,
                                                      api_version=api_version))

    def _delete_module(self, request: Request, api_version: str, device_id: str, _: str,
                       module_id: str) -> Plan:
        if_match = request.headers.get("If-Match")
        return self._run(lambda reg: reads.delete_module(reg, device_id, module_id, if_match))

    def _list_modules(self, request: Request, api_version: str, device_id: str,
                      _: str) -> Plan:
        return self._run(lambda reg: reads.list_modules(reg, device_id,
                                                        api_version=api_version))

    def _list(self, request: Request, api_version: str) -> Plan:
        top = request.args.get("top")
        return self._run(lambda reg: reads.list_devices(reg, top, api_version=api_version))

    def _statistics(self, request: Request, api_version: str, _: str) -> Plan:
        return self._run(reads.statistics)

    def _query(self, request: Request, api_version: str, _: str) -> Plan:
        try:
            body = orjson.loads(self._body(request) or b"null")
        except orjson.JSONDecodeError:
            return self.registry.error(400, "IotHubFormatError", "the body is not valid JSON")
        page, token = request.headers.get("x-ms-max-item-count"), \
            request.headers.get("x-ms-continuation")
        return self._run(lambda reg: reads.query(reg, body, page, token,
                                                 api_version=api_version))

    def _put_device(self, request: Request, api_version: str, device_id: str) -> Plan:
        body, if_match = self._body(request), request.headers.get("If-Match")
        return self._run(lambda reg: reg.put_device(device_id, body, if_match,
                                                    api_version=api_version))

    def _delete_device(self, request: Request, api_version: str, device_id: str) -> Plan:
        if_match = request.headers.get("If-Match")
        return self._run(lambda reg: reg.delete_device(device_id, if_match))

    def _get_twin(self, request: Request, api_version: str, device_id: str) -> Plan:
        return self._run(lambda reg: reg.get_twin(device_id, api_version=api_version))

    def _get_module_twin(self, request: Request, api_version: str, device_id: str, _: str,
                         module_id: str) -> Plan:
        return self._run(lambda reg: reg.get_twin(device_id, module_id,
                                                  api_version=api_version))

    def _replace_twin(self, request: Request, api_version: str, device_id: str,
                      _: str = "", module_id: str | None = None) -> Plan:
        """PUT /twins/{id} and /twins/{id}/modules/{mid}."""
        return self._twin_write(request, api_version, device_id, module_id, merge=False)

    def _update_twin(self, request: Request, api_version: str, device_id: str,
                     _: str = "", module_id: str | None = None) -> Plan:
        """PATCH /twins/{id} and /twins/{id}/modules/{mid}."""
        return self._twin_write(request, api_version, device_id, module_id, merge=True)

    def _twin_write(self, request: Request, api_version: str, device_id: str,
                    module_id: str | None, *, merge: bool) -> Plan:
        body, if_match = self._body(request), request.headers.get("If-Match")
        write = Registry.update_twin if merge else Registry.replace_twin
        return self._run(lambda reg: write(reg, device_id, body, if_match,
                                           api_version=api_version, module_id=module_id))

    def _jobs(self, request: Request, api_version: str, *rest: str) -> Plan:
        body = self._body(request) if request.method == "POST" else b""
        return self.jobs.respond(request.method, rest, body)

    # -- admin ----------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        with self.lock:
            count = len(self.registry)
        return {"hostName": self.host_name, "identities": count,
                "store": type(self.store).__name__, "faults": asdict(self.faults),
                "jobs": self.jobs.status(),
                "policies": [{"name": p.name, "permissions": sorted(p.permissions)}
                             for p in self.policies.values()]}

    def reset(self) -> None:
        with self.lock:
            self.store.clear()
            self.registry = Registry(seed=self.registry.seed, counter=self.registry.counter)

    def seed(self, entries: list[Any], api_version: str) -> list[Any]:
        """Apply ``entries`` as bulk calls of at most the contract's maximum; returns each call's
        result body."""
        results = []
        per_call = bulkreg_schema.contract().max_entries
        for start in range(0, len(entries), per_call):
            checked = check_bulk(orjson.dumps(entries[start:start + per_call]),
                                 api_version=api_version)
            results.append(self._run(functools.partial(Registry.plan_bulk, checked=checked)).body)
        return results

    def _admin(self, request: Request, api_version: str, *action: str) -> Plan:
        try:
            body = orjson.loads(self._body(request) or b"{}") if request.method == "POST" else {}
        except orjson.JSONDecodeError:
            return self.registry.error(400, "IotHubFormatError", "the body is not valid JSON")
        name = action[1] if len(action) > 1 else None
        try:
            if name == "reset":
                self.reset()
            elif name == "seed":
                if type(body) is not list:
                    raise ValueError("seed takes a JSON array of ExportImportDevice entries")
                return _ok({"results": self.seed(body, api_version)})
            elif name is not None:
                raise LookupError(name)
            elif type(body) is dict:
                if "faults" in body:
                    self.faults.update(body["faults"])
                if "jobs" in body:  # test hooks of the job runner (hub/jobs.py)
                    self.jobs.configure(body["jobs"])
        except LookupError:
            return self.registry.error(404, "GenericNotFound", f"no admin action {name!r}")
        except (ValueError, TypeError, AttributeError) as exc:
            return self.registry.error(400, "ArgumentInvalid", str(exc))
        return _ok(self.status())


def _log_failure(request: Request, exc: BaseException) -> None:
    """One line on stderr: what failed, where, on which request (never the body)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    text = repr(exc).replace("\n", " ")[:300]
    print(f"bulkreg serve: 500 on {request.method} {request.path}: {text}{where}",
          file=sys.stderr, flush=True)


def _ok(body: Any) -> Plan:
    return Plan(200, {"Content-Type": "application/json; charset=utf-8"}, body, Changes({}, 0))
