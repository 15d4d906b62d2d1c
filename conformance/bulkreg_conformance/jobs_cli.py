"""``bulkreg jobs import|export|show|list|cancel``: import and export jobs for people, against the
local hub (``bulkreg serve``) or a live one.

``import FILE`` lints the file first (the lines that will fail whatever the registry holds),
uploads it to the container, starts the job, shows its progress (a bar on a terminal, nothing in
a pipe or CI log), then prints the job's outcome and each importErrors.log line beside the line
of FILE it reports, saying whether lint predicted it or it depends on the registry. Exit 0: every
line applied; 1: lines failed; 2: the job could not run (a usage error, an unreachable hub or
store, a refused token, a job that failed or was cancelled). No traceback for bad input; no key,
token or SAS signature is ever printed (keys in FILE's lines are shown as <redacted>).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from bulkreg_validator import validate_import

from .jobs_client import FINISHED, HubError, JobsClient, Unreachable, redact_uri
from .oracle.jobs import DEVICES_BLOB, ERRORS_BLOB, code_name, match_log

__all__ = ["main", "parser"]

_KEYS = re.compile(r'("(?:primaryKey|secondaryKey)"\s*:\s*)"(?:[^"\\]|\\.)*"')
_SIG = re.compile(r"((?:^|[?&\s])sig=)[^&\s\"']+")
_SHOWN = 240  # characters of a file line shown beside its log line


class _Usage(Exception):
    """A usage or environment problem: one line on stderr, exit 2."""


def scrub(text: str) -> str:
    """``text`` with symmetric keys and SAS signatures replaced by <redacted>."""
    return _SIG.sub(r"\1<redacted>", _KEYS.sub(r'\1"<redacted>"', text))


# --- arguments ---------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    hub = argparse.ArgumentParser(add_help=False)
    where = hub.add_argument_group("the hub")
    where.add_argument("--endpoint", metavar="URL",
                       help="the hub's base URL (default: $BULKREG_URL, else $BULKREG_ENDPOINT, "
                            "else https://<HostName> of the connection string)")
    where.add_argument("--connection-string", metavar="CS",
                       help="a service connection string with RegistryReadWrite (default: "
                            "$BULKREG_CONNECTION_STRING)")
    where.add_argument("--ca-cert", metavar="FILE",
                       help="trust the CA certificate(s) in FILE for an https hub (default: "
                            "$BULKREG_CA_CERT)")
    p = argparse.ArgumentParser(
        prog="bulkreg jobs",
        description="Import and export jobs (POST /jobs/create) on the local hub or a live one. "
                    "Exit 0: done, every line applied; 1: lines failed; 2: the job could not run.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = actions.add_parser(
        "import", parents=[hub], help="lint FILE, upload it, import it, print what failed",
        description="Lint FILE, upload it to the container, start an import job, wait for it "
                    "and print each importErrors.log line beside the line of FILE it reports.")
    imp.add_argument("file", metavar="FILE", help="an import file: one device object per line")
    imp.add_argument("--container-uri", required=True, metavar="SAS_URI",
                     help="the input container's SAS URI (the SAS grants write, to upload, and "
                          "read, for the hub)")
    imp.add_argument("--output-container-uri", metavar="SAS_URI",
                     help="where the job writes importErrors.log (SAS: write, read, delete; "
                          "default: the input container)")
    imp.add_argument("--blob-name", default=DEVICES_BLOB,
                     help=f"the name FILE is uploaded as (default {DEVICES_BLOB})")
    imp.add_argument("--no-wait", action="store_true",
                     help="start the job and print its id; `bulkreg jobs show` tells the rest")
    imp.add_argument("--poll", type=_seconds, default=1.0, metavar="S",
                     help="at most this many seconds between two looks at the job "
                          "(default 1; the first looks come sooner)")
    exp = actions.add_parser("export", parents=[hub],
                             help="export every device with its twin to the container",
                             description="Start an export job and wait for it.")
    exp.add_argument("--container-uri", required=True, metavar="SAS_URI",
                     help="the output container's SAS URI (write, read, delete)")
    exp.add_argument("--blob-name", default=DEVICES_BLOB,
                     help=f"the blob written (default {DEVICES_BLOB})")
    exp.add_argument("--exclude-keys", action="store_true",
                     help="export symmetric keys as null (excludeKeysInExport)")
    exp.add_argument("--download", metavar="FILE",
                     help="then save the exported blob to FILE (it holds keys unless "
                          "--exclude-keys)")
    exp.add_argument("--no-wait", action="store_true", help="start the job and print its id")
    exp.add_argument("--poll", type=_seconds, default=1.0, metavar="S",
                     help="at most this many seconds between two looks at the job "
                          "(default 1; the first looks come sooner)")
    show = actions.add_parser("show", parents=[hub], help="one job's properties")
    show.add_argument("job_id", metavar="JOB_ID")
    actions.add_parser("list", parents=[hub], help="every import and export job")
    cancel = actions.add_parser("cancel", parents=[hub], help="cancel an active job")
    cancel.add_argument("job_id", metavar="JOB_ID")
    for sub in (show, actions.choices["list"], cancel):
        sub.add_argument("--json", action="store_true",
                         help="print the JobProperties as JSON (SAS URIs without their SAS)")
    return p


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{value} is outside 0..3600 seconds")
    return value


def _client(args: argparse.Namespace) -> JobsClient:
    cs = args.connection_string or os.environ.get("BULKREG_CONNECTION_STRING")
    if not cs:
        raise _Usage("no hub: give --connection-string or set BULKREG_CONNECTION_STRING "
                     "(`bulkreg serve` prints one)")
    endpoint = (args.endpoint or os.environ.get("BULKREG_URL")
                or os.environ.get("BULKREG_ENDPOINT") or None)
    ca = args.ca_cert or os.environ.get("BULKREG_CA_CERT") or None
    if ca and not Path(ca).is_file():
        raise _Usage(f"--ca-cert {ca}: no such file")
    try:
        return JobsClient(cs, endpoint, ca_cert=ca)
    except ValueError as exc:  # never echo the connection string: it holds the key
        raise _Usage(f"the connection string is not valid: {exc}") from None


# --- output ------------------------------------------------------------------------------------


class _Progress:
    """A one-line bar on a terminal's stderr; nothing when stderr is not a terminal."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.live = stream.isatty() and not os.environ.get("CI")
        self.shown = False

    def __call__(self, job: dict[str, Any]) -> None:
        if not self.live:
            return
        done = int(job.get("progress") or 0)
        bar = "#" * (done // 4) + "-" * (25 - done // 4)
        self.stream.write(f"\r[{bar}] {done:3d}% {job.get('status', '?'):<10}")
        self.stream.flush()
        self.shown = True

    def end(self) -> None:
        if self.shown:
            self.stream.write("\r" + " " * 50 + "\r")
            self.stream.flush()


def _describe(job: dict[str, Any]) -> list[str]:
    rows = []
    for name, value in job.items():
        if value is None:
            continue
        shown = redact_uri(value) if name.endswith("ContainerUri") else value
        rows.append(f"{name}: {scrub(str(shown))}")
    return rows


def _public(job: dict[str, Any]) -> dict[str, Any]:
    return {k: redact_uri(v) if k.endswith("ContainerUri") else v for k, v in job.items()}


# --- import ------------------------------------------------------------------------------------


def _lint(path: Path) -> tuple[dict[int, str], int, int]:
    """The code of each line's first error finding, the number of entries and of warnings."""
    try:
        with path.open("rb") as stream:
            report = validate_import(stream)
    except OSError as exc:
        raise _Usage(f"cannot read {path}: {exc.strerror}") from None
    first: dict[int, str] = {}
    warnings = 0
    for finding in report.findings:
        if finding.severity == "error" and finding.line is not None:
            first.setdefault(finding.line, finding.code or "?")
        elif finding.severity == "warning":
            warnings += 1
    return first, report.entries, warnings


def _container_call(what: str, uri: str, call: Any) -> Any:
    from azure.core.exceptions import AzureError, HttpResponseError  # noqa: PLC0415

    try:
        return call()
    except HttpResponseError as exc:
        code = getattr(exc, "error_code", None) or exc.reason or ""
        raise _Usage(f"could not {what} in {redact_uri(uri)}: {exc.status_code} {code}".strip()
                     + (" (the SAS must allow it)" if exc.status_code == 403 else "")) from None
    except AzureError as exc:
        raise _Usage(f"could not {what} in {redact_uri(uri)}: {type(exc).__name__}") from None


def _upload(path: Path, uri: str, name: str) -> None:
    from azure.storage.blob import ContainerClient  # noqa: PLC0415

    def put() -> None:
        with path.open("rb") as stream:
            ContainerClient.from_container_url(uri).upload_blob(name, stream, overwrite=True)

    _container_call(f"upload {path.name} as {name!r}", uri, put)


def _download(uri: str, name: str) -> Iterator[bytes]:
    from azure.storage.blob import ContainerClient  # noqa: PLC0415

    blob = ContainerClient.from_container_url(uri).get_blob_client(name)
    download = _container_call(f"read {name!r}", uri, blob.download_blob)
    return iter(download.chunks())


def _log_lines(uri: str) -> list[dict[str, Any]]:
    text = b"".join(_download(uri, ERRORS_BLOB))
    entries = []
    for line in text.splitlines():
        if line.strip():
            try:
                entries.append(json.loads(line))
            except ValueError:
                entries.append({"errorStatus": line.decode("utf-8", "replace")})
    return entries


def _file_lines(path: Path, wanted: set[int]) -> dict[int, str]:
    shown = {}
    with path.open("rb") as stream:
        for number, data in enumerate(stream, 1):
            if number in wanted:
                text = data.rstrip(b"\r\n").decode("utf-8", "replace")
                shown[number] = text if len(text) <= _SHOWN else text[:_SHOWN] + "…"
    return shown


def _report_import(path: Path, job: dict[str, Any], log: list[dict[str, Any]],
                   predicted: dict[int, str], entries: int, out: IO[str]) -> int:
    with path.open("rb") as stream:
        matched = list(match_log(stream, log))
    texts = _file_lines(path, {n for n, _ in matched if n is not None})
    failed = len(log)
    out.write(f"import job {job['jobId']} completed: {entries} line(s), {entries - failed} "
              f"applied, {failed} failed\n")
    for number, entry in matched:
        name = code_name(entry.get("errorCode")) or "?"
        where = f"{path.name}:{number}" if number is not None else f"{path.name}:?"
        if number is not None and predicted.get(number) == name:
            why = "lint predicted it"
        elif name in ("DeviceNotFound", "ModuleNotFound", "DeviceAlreadyExists",
                      "ModuleAlreadyExistsOnDevice", "PreconditionFailed"):
            why = "depends on the registry"
        else:
            why = "lint did not predict it"
        out.write(f"{where}: {name} ({entry.get('errorCode')}): "
                  f"{scrub(str(entry.get('errorStatus', '')))} [{why}]\n")
        if number is not None:
            out.write(f"    {scrub(texts.get(number, ''))}\n")
    logged = {n for n, _ in matched}
    missed = sorted(n for n in predicted if n not in logged)
    if missed:
        shown = ", ".join(map(str, missed[:20])) + (" …" if len(missed) > 20 else "")
        out.write(f"lint predicted these lines fail, the job applied them: {shown}\n")
    return 1 if failed else 0


def run_import(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise _Usage(f"{path}: no such file")
    predicted, entries, warnings = _lint(path)
    if entries == 0:
        raise _Usage(f"{path} holds no device line: an import job fails on an empty blob "
                     "(BlobContainerValidationError)")
    err.write(f"lint: {entries} line(s); {len(predicted)} will fail whatever the registry "
              f"holds, {warnings} warning(s) (`bulkreg lint --mode import {path}` shows them)\n")
    client = _client(args)
    output = args.output_container_uri or args.container_uri
    _upload(path, args.container_uri, args.blob_name)
    job = _follow(client, client.create_import(args.container_uri, output,
                                               input_blob=args.blob_name), args, out, err)
    if job is None:
        return 0
    if job.get("status") != "completed":
        return 2
    return _report_import(path, job, _log_lines(output), predicted, entries, out)


def _follow(client: JobsClient, job: dict[str, Any], args: argparse.Namespace, out: IO[str],
            err: IO[str]) -> dict[str, Any] | None:
    """Wait for a started job with a progress bar (None with --no-wait: its id printed); a job
    that did not complete is printed with its reason."""
    if args.no_wait:
        out.write(f"{job['jobId']}\n")
        return None
    progress = _Progress(err)
    try:
        job = client.wait(job["jobId"], poll=args.poll, on_progress=progress)
    finally:
        progress.end()
    if job.get("status") != "completed":
        out.write(f"{job.get('type')} job {job['jobId']} {job.get('status')}: "
                  f"{scrub(str(job.get('failureReason')))}\n")
    return job


# --- export, show, list, cancel ------------------------------------------------------------------


def run_export(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    client = _client(args)
    job = _follow(client, client.create_export(args.container_uri,
                                               exclude_keys=args.exclude_keys,
                                               output_blob=args.blob_name), args, out, err)
    if job is None:
        return 0
    if job.get("status") != "completed":
        return 2
    out.write(f"export job {job['jobId']} completed: {args.blob_name} in "
              f"{redact_uri(args.container_uri)}\n")
    if args.download:
        target = Path(args.download)
        try:
            with target.open("wb") as saved:
                for chunk in _download(args.container_uri, args.blob_name):
                    saved.write(chunk)
        except OSError as exc:
            raise _Usage(f"cannot write {target}: {exc.strerror}") from None
        out.write(f"saved to {target}\n")
    return 0


def run_show(args: argparse.Namespace, out: IO[str]) -> int:
    job = _client(args).get(args.job_id)
    out.write(json.dumps(_public(job)) + "\n" if args.json else "\n".join(_describe(job)) + "\n")
    return 0


def run_list(args: argparse.Namespace, out: IO[str]) -> int:
    jobs = _client(args).list()
    if args.json:
        out.write(json.dumps([_public(j) for j in jobs]) + "\n")
        return 0
    for job in jobs:
        reason = f"  {scrub(str(job['failureReason']))}" if job.get("failureReason") else ""
        out.write(f"{job.get('jobId')}  {job.get('type', '?'):<6} {job.get('status', '?'):<9} "
                  f"{job.get('progress', 0):>3}%  {job.get('startTimeUtc') or '-'}{reason}\n")
    return 0


def run_cancel(args: argparse.Namespace, out: IO[str]) -> int:
    client = _client(args)
    client.cancel(args.job_id)
    job = client.get(args.job_id)
    if args.json:
        out.write(json.dumps(_public(job)) + "\n")
        return 0
    status = job.get("status")
    out.write(f"job {args.job_id}: {status}"
              + (" (it stops before its next batch)" if status not in FINISHED else "") + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    out, err = sys.stdout, sys.stderr
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    try:
        if args.action == "import":
            return run_import(args, out, err)
        if args.action == "export":
            return run_export(args, out, err)
        if args.action == "show":
            return run_show(args, out)
        if args.action == "list":
            return run_list(args, out)
        return run_cancel(args, out)
    except _Usage as exc:
        err.write(f"bulkreg jobs: {exc}\n")
    except Unreachable as exc:
        err.write(f"bulkreg jobs: {exc}\n")
    except HubError as exc:
        hint = ""
        if exc.status == 401:
            hint = "; check the connection string (a policy with RegistryReadWrite)"
        elif exc.code == "JobQuotaExceeded":
            hint = "; another import or export job is active (`bulkreg jobs list`)"
        err.write(f"bulkreg jobs: the hub answered {exc.status} {exc.code}: "
                  f"{scrub(exc.message)}{hint}\n")
    except KeyboardInterrupt:
        err.write("bulkreg jobs: interrupted (a started job goes on: `bulkreg jobs cancel`)\n")
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
