"""The blob store of import and export jobs: container SAS URIs read and written with the
official ``azure-storage-blob`` library, so the hub works against any Azure Blob endpoint (the
tests use Azurite).

Owns the storage errors a job can meet and the failure reason each gives (facts §6.3): an
unreachable store, a SAS that does not grant what is needed, a missing container or blob, an
empty input blob. A reason names the container without its SAS (never a signature) and says
what the SAS must grant. Input is read in 4 MiB chunks, one at a time (a blob of any size is
never held); output is written as blocks, staged as the job goes and committed in order, so a
log holds exactly the lines of the batches that were applied (see ``hub/jobs.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from azure.core.exceptions import AzureError, HttpResponseError
from azure.storage.blob import (
    BlobBlock,
    BlobClient,
    ContainerClient,
    ExponentialRetry,
    StorageErrorCode,
)

__all__ = ["BlockBlob", "StorageFailure", "open_input", "safe_uri"]

CHUNK = 4 * 1024 * 1024
# decision: a few quick retries (the library's default waits 15 s, then 45 s, ...): a job on an
# unreachable store fails within seconds with a reason rather than hanging.


class StorageFailure(Exception):
    """Storage could not do what the job needed; ``reason`` is the job's failureReason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def safe_uri(uri: str) -> str:
    """``uri`` without its query: a container SAS URI without the SAS (never show a sig)."""
    parts = urlsplit(uri)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


RETRIES = 2


def _retry(retries: int) -> ExponentialRetry:
    # decision: a few quick retries, 3 s then 5 s apart (the library's default waits 15 s, then
    # 24 s, ...): a job on an unreachable store fails within seconds with a reason.
    return ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=retries,
                            random_jitter_range=1)


def _error_code(exc: HttpResponseError) -> str:
    return str(getattr(exc, "error_code", None) or exc.reason or "")


def _container(uri: str, retries: int) -> ContainerClient:
    try:
        return ContainerClient.from_container_url(
            uri, retry_policy=_retry(retries), max_single_get_size=CHUNK, max_chunk_get_size=CHUNK,
            max_block_size=CHUNK, connection_timeout=10, read_timeout=60)
    except ValueError as exc:  # not a container URL
        raise StorageFailure(f"Unable to access blob (IH400007): {safe_uri(uri)} is not the URI "
                             f"of a blob container ({exc})") from None


def _failure(exc: Exception, uri: str, doing: str, needs: str) -> StorageFailure:
    """The failure reason for a storage error met while ``doing`` (e.g. "read 'devices.txt'")."""
    where = safe_uri(uri)
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        code = _error_code(exc)
        detail = f"{exc.status_code} {code}".strip()
        if exc.status_code == 403:
            hint = f"the SAS must grant {needs} and be valid now"
        elif code == StorageErrorCode.CONTAINER_NOT_FOUND:
            hint = "the container does not exist"
        else:
            hint = "the storage service refused the request"
        return StorageFailure(f"Unable to access blob (IH400007): could not {doing} in "
                              f"container {where}: {detail} ({hint})")
    kind = type(exc).__name__
    return StorageFailure(f"Unable to access blob (IH400007): could not {doing} in container "
                          f"{where}: the storage endpoint is unreachable ({kind})")


def open_input(uri: str, name: str, *, retries: int = RETRIES) -> tuple[int, Iterator[bytes]]:
    """The size of the input blob ``name`` and its content in chunks (read lazily, one at a
    time). A missing, uncommitted or empty blob is BlobContainerValidationError, as the service
    answers it (Azure-Samples/azure-iot-samples-csharp#128); any other error IH400007."""
    blob = _container(uri, retries).get_blob_client(name)
    try:
        download = blob.download_blob(max_concurrency=1)
    except HttpResponseError as exc:
        if exc.status_code == 404 and _error_code(exc) == StorageErrorCode.BLOB_NOT_FOUND:
            raise StorageFailure(
                f"BlobContainerValidationError (400008): the input blob {name!r} is not in "
                f"container {safe_uri(uri)} (missing, or uploaded but never committed)") from None
        raise _failure(exc, uri, f"read {name!r}", "read") from None
    except AzureError as exc:
        raise _failure(exc, uri, f"read {name!r}", "read") from None
    if download.size == 0:
        raise StorageFailure(f"BlobContainerValidationError (400008): the input blob {name!r} "
                             f"in container {safe_uri(uri)} is empty")
    return download.size, _chunks(download.chunks(), uri, name)


def _chunks(chunks: Iterator[bytes], uri: str, name: str) -> Iterator[bytes]:
    try:
        yield from chunks
    except AzureError as exc:
        raise _failure(exc, uri, f"read {name!r}", "read") from None


class BlockBlob:
    """A block blob written block by block: ``stage`` as the job goes, ``commit`` the blocks
    that count. Block ids are fixed-width strings chosen by the caller."""

    def __init__(self, uri: str, name: str, *, retries: int = RETRIES) -> None:
        self.uri = uri
        self.name = name
        self._blob: BlobClient = _container(uri, retries).get_blob_client(name)

    def _call(self, doing: str, call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except AzureError as exc:
            raise _failure(exc, self.uri, f"{doing} {self.name!r}",
                           "write, read and delete") from None

    def reset(self) -> None:
        """Create the blob empty (or empty an existing one): the first write of a job, which
        also proves the SAS may write."""
        self._call("write", self._blob.commit_block_list, [])

    def stage(self, block_id: str, data: bytes) -> None:
        self._call("write", self._blob.stage_block, block_id, data)

    def commit(self, block_ids: list[str]) -> None:
        self._call("write", self._blob.commit_block_list, [BlobBlock(i) for i in block_ids])

    def blocks(self) -> tuple[list[str], list[str]]:
        """The committed and the staged-but-uncommitted block ids."""
        committed, uncommitted = self._call("read the block list of", self._blob.get_block_list,
                                            "all")
        return [b.id for b in committed], [b.id for b in uncommitted]
