"""Azurite, the Azure Storage emulator, as the real blob store of local import/export jobs.

``start_azurite`` runs its Blob service on 127.0.0.1 (an ephemeral port, telemetry off, data in
a folder of the caller's) and returns its endpoint and ``stop()``; ``container_uri`` makes a
container and a container SAS URI for it with the permissions asked for. Azurite is the npm
package ``azurite`` (pinned in ``tests/azurite/package.json``, installed with ``npm ci`` by
``.ci/run``); ``BULKREG_AZURITE`` names another ``azurite-blob`` executable.

The account and key are Azurite's published well-known development credentials, the same on
every machine (learn.microsoft.com storage-use-azurite): they protect nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

__all__ = ["ACCOUNT", "KEY", "Azurite", "find_azurite", "start_azurite"]

ACCOUNT = "devstoreaccount1"
KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
       "KBHBeksoGMGw==")
_CHECKOUT = Path(__file__).resolve().parents[2] / "tests" / "azurite"
_LISTENING = re.compile(r"successfully listens on (http://127\.0\.0\.1:(\d+))")


def find_azurite() -> str | None:
    """The ``azurite-blob`` executable: $BULKREG_AZURITE, the checkout's pinned copy
    (tests/azurite after ``npm ci``), or one on PATH."""
    given = os.environ.get("BULKREG_AZURITE")
    if given:
        return given
    pinned = _CHECKOUT / "node_modules" / ".bin" / "azurite-blob"
    if pinned.exists():
        return str(pinned)
    return shutil.which("azurite-blob")


class Azurite:
    """A running Azurite Blob service; ``stop()`` (or leaving the ``with`` block) ends it."""

    def __init__(self, process: subprocess.Popen[str], endpoint: str,
                 reader: threading.Thread) -> None:
        self.process = process
        self._reader = reader
        self.endpoint = endpoint  # http://127.0.0.1:PORT
        self.account_url = f"{endpoint}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
                f"BlobEndpoint={self.account_url};")

    def container_uri(self, name: str, permission: str = "rwdl", *, create: bool = True,
                      hours: float = 4.0) -> str:
        """A SAS URI for container ``name`` (made if ``create`` and missing) granting
        ``permission`` (letters of rwdlac, as az storage does)."""
        from azure.core.exceptions import ResourceExistsError  # noqa: PLC0415 - lazy
        from azure.storage.blob import (  # noqa: PLC0415 - lazy: only a caller with jobs
            BlobServiceClient,
            ContainerSasPermissions,
            generate_container_sas,
        )

        if create:
            service = BlobServiceClient.from_connection_string(self.connection_string)
            with contextlib.suppress(ResourceExistsError):
                service.create_container(name)
        sas = generate_container_sas(
            ACCOUNT, name, account_key=KEY,
            permission=ContainerSasPermissions.from_string(permission),
            expiry=datetime.now(UTC) + timedelta(hours=hours))
        return f"{self.account_url}/{name}?{sas}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(10)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> Azurite:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def start_azurite(location: Path, *, executable: str | None = None,
                  timeout: float = 30.0) -> Azurite:
    """Start Azurite's Blob service on 127.0.0.1 (any free port) keeping its data in
    ``location``; RuntimeError with Azurite's own words if it does not come up."""
    program = executable or find_azurite()
    if program is None:
        raise RuntimeError("azurite-blob not found: run `npm ci` in tests/azurite, or set "
                           "BULKREG_AZURITE")
    location.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [program, "--blobHost", "127.0.0.1", "--blobPort", "0", "--location", str(location),
         "--silent", "--disableTelemetry", "--skipApiVersionCheck", "--loose"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    found: list[str] = []
    said: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:  # drained until the end, so Azurite never blocks on it
            if not found:
                said.append(line.strip())
                match = _LISTENING.search(line)
                if match:
                    found.append(match.group(1))
                    ready.set()
        ready.set()

    ready = threading.Event()
    reader = threading.Thread(target=read, daemon=True, name="azurite-output")
    reader.start()
    ready.wait(timeout)
    running = Azurite(process, found[0] if found else "", reader)
    if not found:
        running.stop()
        raise RuntimeError("Azurite did not start: " + " / ".join(said[-5:]))
    return running
