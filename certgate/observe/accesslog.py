"""The access log: one JSON line per gateway request, named as APIM's ApiManagementGatewayLogs.

`--access-log PATH|-|off`: each gateway worker opens the file once (O_APPEND, so workers share
it) or writes to its stdout (`-`). Lines are buffered and written whole (one write per flush to a
file, chunks of at most PIPE_BUF bytes to a pipe), and every line is shorter than PIPE_BUF (long
fields are cut, then the trace records), so lines of several workers never interleave. The buffer
is flushed every `FLUSH_SECONDS` (one timer per flush, not per request), when it holds
`FLUSH_BYTES`, and at shutdown. With `off` no object exists and the request path skips it all.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import select
import stat
import time
from json.encoder import encode_basestring_ascii
from typing import Any

from certgate.policy.context import new_request_id

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
_text = encode_basestring_ascii  # a str as a JSON string literal (C)
_PID = os.getpid()  # a spawned worker imports this module afresh


class AccessLog:
    """Buffered JSON lines to one file descriptor; see the module docstring."""

    __slots__ = ("_buffer", "_chunk", "_close", "_fd", "_size", "_timer", "dropped")

    def __init__(self, fd: int, *, close: bool) -> None:
        self._fd = fd
        self._close = close
        # O_APPEND writes to a regular file never interleave; to a pipe only up to PIPE_BUF
        self._chunk = FLUSH_BYTES if stat.S_ISREG(os.fstat(fd).st_mode) else LINE_MAX
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

    def write(self, line: bytes) -> None:
        """Buffers one line from `line()` (whole, newline-terminated, shorter than LINE_MAX)."""
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
            if size + len(line) > self._chunk and chunk:
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


def line(exchange: Any, context: Any, config: Any, status: int, seconds: float) -> bytes:
    """The access log line of one answered exchange (`context` is None for a request that matched
    no API, `config` the GatewayConfig it was served with). Preformatted rather than a dict through
    `json.dumps` (a third of the cost): strings pass through the C JSON string encoder, and the
    connection's own fields are formatted once per connection and configuration."""
    conn = exchange.conn
    body = exchange.body
    if context is None:
        request_id, api, operation, backend, error = new_request_id(), "null", "null", _NONE, ""
    else:
        request_id = context.RequestId
        api = _text(context.Api.Id) if context.Api is not None else "null"
        operation = _text(context.Operation.Id) if context.Operation is not None else "null"
        backend = _NONE
        if context.backend_status is not None:
            backend_ms = round(context.backend_seconds * 1000)
            backend = f',"BackendResponseCode":{context.backend_status},"BackendTime":{backend_ms}'
        error = _extra(context) if context.LastError is not None or context.traces else ""
    text = (
        f'{{"TimeGenerated":"{_timestamp(time.time() - seconds)}","CorrelationId":"{request_id}",'
        f'"ApiId":{api},"OperationId":{operation},"Method":{_text(exchange.method)},'
        f'"Url":{_text(f"{conn.scheme}://{exchange.authority}{exchange.target}")},'
        f'"ResponseCode":{status}{backend},"ClientProtocol":"HTTP/{exchange.http_version}",'
        f'"TotalTime":{round(seconds * 1000)},'
        f'"RequestSize":{body.received if body is not None else 0},'
        f'"ResponseSize":{exchange.sent},"IsRequestSuccess":{_BOOL[0 < status < 400]},'
        f"{_connection_fields(conn, config)}{_verdict(conn, config)}{error}}}\n"
    )
    data = text.encode()
    if len(data) >= LINE_MAX:
        return _shortened(json.loads(data))
    return data


def _connection_fields(conn: Any, config: Any) -> str:
    """The fields every request of a connection shares, formatted once per configuration."""
    cached = conn.log_fields
    if cached is not None and cached[0] is config:
        return cached[1]
    tls = _text(conn.tls.tls_version) if conn.tls is not None else "null"
    text = f'"CallerIpAddress":{_text(conn.client_ip)},"ClientTlsVersion":{tls},"ProcessId":{_PID}'
    if conn.peer is not None and config is not None:
        certificate = conn.client_certificate(config.verifier)
        text += (
            f',"ClientCertificateThumbprint":{_text(certificate.Thumbprint)}'
            f',"ClientCertificateSubject":{_text(certificate.Subject)}'
            f',"ClientCertificateIssuer":{_text(certificate.Issuer)}'
        )
    conn.log_fields = (config, text)
    return text


def _verdict(conn: Any, config: Any) -> str:
    """The `Verify()` outcome, when a policy asked for it on this connection."""
    if conn.peer is None or config is None:
        return ""
    verdict = conn.client_certificate(config.verifier).verified()
    if verdict is None:
        return ""
    if verdict.ok:
        return ',"ClientCertificateVerified":true'
    reason = _text(verdict.reason)
    return f',"ClientCertificateVerified":false,"ClientCertificateVerifyReason":{reason}'


def _extra(context: Any) -> str:
    """`LastError` and the trace records (only requests that have them pay for `json.dumps`)."""
    fields: dict[str, Any] = {}
    error = context.LastError
    if error is not None:
        fields["LastErrorSource"] = error.Source
        fields["LastErrorReason"] = error.Reason
        fields["LastErrorMessage"] = error.Message
        fields["LastErrorScope"] = error.Scope
        fields["LastErrorSection"] = error.Section
    if context.traces:
        fields["TraceRecords"] = context.traces
    return "," + _dumps(fields)[1:-1]


def _timestamp(moment: float) -> str:
    """ISO 8601 UTC with microseconds; the text up to the second is reused within a second."""
    whole = int(moment)
    if _second[0] != whole:
        _second[0] = whole
        _second[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{_second[1]}.{int((moment - whole) * 1_000_000):06d}Z"


_second: list[Any] = [-1, ""]
_BOOL = ("false", "true")
_NONE = ',"BackendResponseCode":null,"BackendTime":null'
