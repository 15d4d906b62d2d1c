"""A small client of an IoT hub's import/export jobs routes (facts §6.3): create, get, list,
cancel, wait. Used by ``bulkreg jobs`` and meant for a conformance ``jobs`` suite.

Every request carries a fresh SharedAccessSignature for the connection string's HostName (as
the SDKs sign), so the endpoint may be a local hub, a live hub or a gateway. Errors are typed:
``HubError`` for an answer the hub gave (status, errorCode, message), ``Unreachable`` for none.
Nothing here prints; nothing it raises carries a key (a SAS in a job record is the caller's to
redact, with ``redact_uri``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import requests

from .sas import generate_token, parse_connection_string

__all__ = ["API_VERSION", "FINISHED", "HubError", "JobsClient", "Unreachable", "redact_uri"]

API_VERSION = "2021-04-12"
FINISHED = ("completed", "failed", "cancelled")


class HubError(Exception):
    """The hub answered with an error: its status, errorCode (iothub-errorcode or the body's
    ``ErrorCode:<Name>;``) and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class Unreachable(Exception):
    """No answer: connection refused, DNS, TLS verification, timeout."""


def redact_uri(uri: Any) -> Any:
    """A container SAS URI without its query (the SAS and its signature), other values as
    they are."""
    return uri.split("?", 1)[0] if isinstance(uri, str) else uri


def _error(response: requests.Response) -> HubError:
    code = response.headers.get("iothub-errorcode", "")
    message = response.text[:500]
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("Message"), str):
        message = body["Message"]
        if message.startswith("ErrorCode:") and ";" in message:
            named, _, message = message[len("ErrorCode:"):].partition(";")
            code = code or named
    return HubError(response.status_code, code or "unknown", message)


class JobsClient:
    """The jobs routes of one hub; ``endpoint`` defaults to ``https://<HostName>``."""

    def __init__(self, connection_string: str, endpoint: str | None = None, *,
                 ca_cert: str | None = None, timeout: float = 30.0) -> None:
        self._cs = parse_connection_string(connection_string)  # ValueError if malformed
        self.endpoint = (endpoint or f"https://{self._cs.host_name}").rstrip("/")
        self.session = requests.Session()
        # per request, so that a CA given here wins over $REQUESTS_CA_BUNDLE (requests lets the
        # environment override a session's verify)
        self.verify: str | bool = ca_cert or True
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        token = generate_token(self._cs.host_name, self._cs.key_name, self._cs.key)
        try:
            response = self.session.request(
                method, self.endpoint + path, params={"api-version": API_VERSION},
                data=None if body is None else json.dumps(body),
                headers={"Authorization": token,
                         "Content-Type": "application/json; charset=utf-8"},
                verify=self.verify, timeout=self.timeout)
        except requests.exceptions.SSLError as exc:
            raise Unreachable(f"the TLS certificate of {self.endpoint} is not trusted "
                              f"({type(exc).__name__}); give its CA with --ca-cert") from None
        except requests.RequestException as exc:
            raise Unreachable(f"cannot reach {self.endpoint} ({type(exc).__name__})") from None
        if response.status_code >= 400:
            raise _error(response)
        return response.json() if response.content else None

    def create(self, job: dict[str, Any]) -> dict[str, Any]:
        """POST /jobs/create: the job as the hub accepted it."""
        created: dict[str, Any] = self._call("POST", "/jobs/create", job)
        return created

    def create_import(self, input_uri: str, output_uri: str, *,
                      input_blob: str | None = None) -> dict[str, Any]:
        job = {"type": "import", "inputBlobContainerUri": input_uri,
               "outputBlobContainerUri": output_uri, "storageAuthenticationType": "keyBased"}
        if input_blob:
            job["inputBlobName"] = input_blob
        return self.create(job)

    def create_export(self, output_uri: str, *, exclude_keys: bool,
                      output_blob: str | None = None) -> dict[str, Any]:
        job: dict[str, Any] = {"type": "export", "outputBlobContainerUri": output_uri,
                               "excludeKeysInExport": exclude_keys,
                               "storageAuthenticationType": "keyBased"}
        if output_blob:
            job["outputBlobName"] = output_blob
        return self.create(job)

    def get(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self._call("GET", f"/jobs/{quote(job_id, safe='')}")
        return job

    def list(self) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = self._call("GET", "/jobs")
        return jobs

    def cancel(self, job_id: str) -> dict[str, Any] | None:
        job: dict[str, Any] | None = self._call("DELETE", f"/jobs/{quote(job_id, safe='')}")
        return job

    def wait(self, job_id: str, *, poll: float = 1.0,
             on_progress: Callable[[dict[str, Any]], None] | None = None,
             deadline: float | None = None) -> dict[str, Any]:
        """Poll the job until it has ended (or ``deadline`` seconds have passed: then the last
        state seen); ``on_progress`` sees every state. The first polls come quickly (50 ms,
        doubling) up to one every ``poll`` seconds: a small job is seen ended at once."""
        end = None if deadline is None else time.monotonic() + deadline
        wait = min(0.05, poll)
        while True:
            job = self.get(job_id)
            if on_progress is not None:
                on_progress(job)
            if job.get("status") in FINISHED or (end is not None and time.monotonic() > end):
                return job
            time.sleep(wait)
            wait = min(wait * 2, poll)
