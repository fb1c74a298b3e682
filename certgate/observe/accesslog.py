"""The access log: one JSON line per gateway request, named as APIM's ApiManagementGatewayLogs.

`--access-log PATH|-|off`: each gateway worker opens the file once (O_APPEND, so workers share it)
or writes to its stdout (`-`). Lines are buffered and written by whole lines in chunks of at most
PIPE_BUF bytes, and every line is shorter than PIPE_BUF (long fields are cut, then the trace
records), so lines of several workers never interleave, in a file or a pipe. The buffer is flushed
every `FLUSH_SECONDS` (one timer per flush, not per request), when it holds `FLUSH_BYTES`, and at
shutdown. With `off` no object exists and the request path skips the whole step.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import select
import stat
import time
import uuid
from typing import Any

log = logging.getLogger("certgate.accesslog")

LINE_MAX = select.PIPE_BUF  # a line, newline included, is shorter than this
FLUSH_SECONDS = 0.2
FLUSH_BYTES = 64 * 1024
_CUT = 256  # characters kept of a long field when a line is too long
_LONG_FIELDS = (
    "Url",
    "LastErrorMessage",
    "ClientCertificateSubject",
    "ClientCertificateIssuer",
    "ApiId",
    "OperationId",
)
_dumps = json.JSONEncoder(separators=(",", ":")).encode
_PID = [os.getpid()]  # read per line; a spawned worker imports this module afresh


class AccessLog:
    """Buffered JSON lines to one file descriptor; see the module docstring."""

    __slots__ = ("_buffer", "_close", "_fd", "_size", "_timer", "dropped")

    def __init__(self, fd: int, *, close: bool) -> None:
        self._fd = fd
        self._close = close
        self._buffer: list[bytes] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        self.dropped = 0  # lines lost to write errors

    @classmethod
    def open(cls, target: str) -> AccessLog | None:
        """`off` -> None, `-` -> stdout, else the file at `target` (created 0640, appended to)."""
        if target == "off":
            return None
        if target == "-":
            return cls(1, close=False)
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        if not stat.S_ISREG(os.fstat(fd).st_mode) and not stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.close(fd)
            raise ValueError(f"--access-log {target}: not a regular file or a pipe")
        return cls(fd, close=True)

    def write(self, record: dict[str, Any]) -> None:
        line = _dumps(record).encode() + b"\n"
        if len(line) >= LINE_MAX:
            line = _shortened(record)
        self._buffer.append(line)
        self._size += len(line)
        if self._size >= FLUSH_BYTES:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        lines, self._buffer, self._size = self._buffer, [], 0
        chunk: list[bytes] = []
        size = 0
        for line in lines:
            if size + len(line) >= LINE_MAX and chunk:
                self._write(chunk)
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        if chunk:
            self._write(chunk)

    def _write(self, lines: list[bytes]) -> None:
        data = b"".join(lines)
        try:
            while data:
                data = data[os.write(self._fd, data) :]
        except OSError as error:
            self.dropped += len(lines)
            log.warning("access log write failed (%d lines dropped): %s", len(lines), error)

    def close(self) -> None:
        self.flush()
        if self._close:
            os.close(self._fd)
            self._close = False


def _shortened(record: dict[str, Any]) -> bytes:
    """The line of a record whose full line is too long: long fields cut, then traces dropped."""
    record = dict(record)
    for name in _LONG_FIELDS:
        value = record.get(name)
        if isinstance(value, str) and len(value) > _CUT:
            record[name] = value[:_CUT] + "..."
    record["Truncated"] = True
    line = _dumps(record).encode() + b"\n"
    if len(line) >= LINE_MAX:
        traces = record.pop("TraceRecords", None) or []
        record["TraceRecords"] = [{"message": f"{len(traces)} trace records dropped: too long"}]
        line = _dumps(record).encode() + b"\n"
    return line


def record(exchange: Any, context: Any, config: Any, status: int, seconds: float) -> dict:
    """The access log record of one answered exchange (`context` is None for a request that
    matched no API, `config` the GatewayConfig it was served with)."""
    conn = exchange.conn
    body = exchange.body
    entry: dict[str, Any] = {
        "TimeGenerated": _iso(time.time() - seconds),
        "CorrelationId": context.RequestId if context is not None else str(uuid.uuid4()),
        "ApiId": None,
        "OperationId": None,
        "Method": exchange.method,
        "Url": f"{conn.scheme}://{exchange.authority}{exchange.target}",
        "ResponseCode": status,
        "BackendResponseCode": None,
        "CallerIpAddress": conn.client_ip,
        "ClientProtocol": f"HTTP/{exchange.http_version}",
        "ClientTlsVersion": conn.tls.tls_version if conn.tls is not None else None,
        "TotalTime": round(seconds * 1000),
        "BackendTime": None,
        "RequestSize": body.received if body is not None else 0,
        "ResponseSize": exchange.sent,
        "IsRequestSuccess": 0 < status < 400,
        "ProcessId": _PID[0],  # certgate: the gateway worker that served it
    }
    if context is not None:
        entry["ApiId"] = context.Api.Id if context.Api is not None else None
        entry["OperationId"] = context.Operation.Id if context.Operation is not None else None
        if context.backend_status is not None:
            entry["BackendResponseCode"] = context.backend_status
            entry["BackendTime"] = round(context.backend_seconds * 1000)
        error = context.LastError
        if error is not None:
            entry["LastErrorSource"] = error.Source
            entry["LastErrorReason"] = error.Reason
            entry["LastErrorMessage"] = error.Message
            entry["LastErrorScope"] = error.Scope
            entry["LastErrorSection"] = error.Section
        if context.traces:
            entry["TraceRecords"] = context.traces
    if conn.peer is not None and config is not None:
        certificate = conn.client_certificate(config.verifier)
        entry["ClientCertificateThumbprint"] = certificate.Thumbprint
        entry["ClientCertificateSubject"] = certificate.Subject
        entry["ClientCertificateIssuer"] = certificate.Issuer
        verdict = certificate.verified()
        if verdict is not None:
            entry["ClientCertificateVerified"] = verdict.ok
            if not verdict.ok:
                entry["ClientCertificateVerifyReason"] = verdict.reason
    return entry


def _iso(moment: float) -> str:
    whole = int(moment)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{stamp}.{int((moment - whole) * 1_000_000):06d}Z"
