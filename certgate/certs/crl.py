"""Where CRLs come from: operator uploads and the certificates' http CRL distribution points.

`Verify()` runs inside policy evaluation and must never wait on the network, so the gateway
awaits `Verifier.prefetch(leaf, chain)` before the pipeline whenever a client certificate is
present; verification then reads what is cached (`candidates`). Fetched CRLs are kept until their
nextUpdate and refreshed in the background shortly before; a distribution point that fails is
remembered for a short while, so a down CRL server costs one timeout, not one per request.
Every change to the set of usable CRLs bumps `generation`, which invalidates cached results.

The handshake is unauthenticated input, so downloads are bounded (`Limits`, crl_* fields): only
certificates whose path reaches a trust anchor are fetched for (the Verifier decides), a few
http(s) URLs per certificate and per connection, one shared HTTP client with a per-process cap on
concurrent downloads, a total deadline per download, a size cap, and redirects only to the same
host (at most a few).

With a `shared` cache (the store's, certgate.config.crlcache) the workers and nodes share their
downloads: where a worker would download, it first reads the shared row and uses it while it is
fresh, and it writes every successful download there. The shared cache is only an optimisation: when
the store fails, the worker downloads as it would without it (and logs that once).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Protocol

import httpx
from cryptography import x509

from certgate.certs.certinfo import CertInfo, NameKey
from certgate.certs.crlinfo import CrlInfo, CrlLoadError, load_crl
from certgate.certs.revocation import CrlSource
from certgate.limits import DEFAULT_LIMITS, Limits
from certgate.observe.metrics import CRL_FETCHES

log = logging.getLogger(__name__)

REFRESH_MARGIN = 0.1
_SCHEMES = ("http://", "https://")
_FAILURES = (httpx.HTTPError, httpx.InvalidURL, CrlLoadError, OSError, ValueError)
_NO_NEXT_UPDATE = dt.timedelta(hours=1)  # how long a CRL without nextUpdate is used


class SharedCrls(Protocol):
    """CRLs shared by all workers and nodes (synchronous: called in a thread)."""

    def read(self, url: str) -> tuple[bytes, dt.datetime] | None: ...

    def write(self, url: str, der: bytes, next_update: dt.datetime) -> None: ...


def _refresh_due(info: CrlInfo, expires: float, now: float) -> bool:
    """Whether a CRL used until `expires` is within REFRESH_MARGIN of its lifetime from the end."""
    return expires - now < (expires - info.this_update.timestamp()) * REFRESH_MARGIN


def distribution_urls(cert: x509.Certificate) -> list[str]:
    """The http(s) URLs of a certificate's CRL distribution points (ldap, file... are ignored)."""
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except (x509.ExtensionNotFound, ValueError, x509.DuplicateExtension):
        return []
    return [
        name.value
        for point in points
        for name in point.full_name or ()
        if isinstance(name, x509.UniformResourceIdentifier)
        and name.value.lower().startswith(_SCHEMES)
    ]


class _Fetched:
    __slots__ = ("crl", "expires", "failed_until", "refreshing")

    def __init__(self) -> None:
        self.crl: CrlInfo | None = None
        self.expires = 0.0
        self.failed_until = 0.0
        self.refreshing: asyncio.Task | None = None


class _Downloader:
    """The one HTTP client and the concurrency cap of an event loop (both are bound to it)."""

    __slots__ = ("client", "loop", "slots")

    def __init__(self, limits: Limits) -> None:
        self.loop = asyncio.get_running_loop()
        self.slots = asyncio.Semaphore(limits.crl_fetch_concurrency)
        self.client = httpx.AsyncClient(
            follow_redirects=False,
            headers={"Accept-Encoding": "identity"},
            timeout=limits.crl_fetch_timeout,
            limits=httpx.Limits(max_connections=limits.crl_fetch_concurrency),
        )


class CrlFetcher:
    """Process-wide cache of CRLs downloaded from distribution points (shared by all Snapshots)."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS, shared: SharedCrls | None = None):
        self.limits = limits
        self.shared = shared
        self._shared_failing = False
        self.generation = 0
        self._by_url: dict[str, _Fetched] = {}
        self._by_issuer: dict[NameKey, dict[str, CrlInfo]] = {}
        self._inflight: dict[str, asyncio.Task] = {}
        self._downloader: _Downloader | None = None

    def candidates(self, issuer_key: NameKey) -> list[CrlInfo]:
        return list(self._by_issuer.get(issuer_key, {}).values())

    async def ensure(self, urls: Iterable[str]) -> None:
        """Starts a download for every URL with no fresh CRL and waits for them, at most one
        download deadline (they finish in the background); schedules refreshes of aging ones."""
        now = time.time()
        waits = []
        for url in dict.fromkeys(urls):
            entry = self._by_url.setdefault(url, _Fetched())
            if entry.crl is not None and now < entry.expires:
                due = _refresh_due(entry.crl, entry.expires, now) and now >= entry.failed_until
                if due and not entry.refreshing:
                    entry.refreshing = asyncio.get_running_loop().create_task(self._fetch(url))
                continue
            if now < entry.failed_until:
                continue
            waits.append(self._start(url))
        if waits:
            await asyncio.wait(waits, timeout=self.limits.crl_fetch_timeout)

    def _start(self, url: str) -> asyncio.Task:
        task = self._inflight.get(url)
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(self._fetch(url))
            self._inflight[url] = task
            task.add_done_callback(lambda done: self._forget(url, done))
        return task

    def _forget(self, url: str, task: asyncio.Task) -> None:
        if self._inflight.get(url) is task:
            del self._inflight[url]

    async def _fetch(self, url: str) -> None:
        entry = self._by_url.setdefault(url, _Fetched())
        try:
            found = await self._read_shared(url)
            if found is not None:
                CRL_FETCHES.labels("shared").inc()
                self._store(url, entry, *found)
                return
            data = await self._download(url)
            info = load_crl(data, source=url)
        except _FAILURES as exc:
            CRL_FETCHES.labels("failed").inc()
            log.warning("CRL download from %s failed: %s", url, str(exc) or type(exc).__name__)
            entry.failed_until = time.time() + self.limits.crl_failure_backoff
            return
        finally:
            entry.refreshing = None
        CRL_FETCHES.labels("ok").inc()
        expires = info.next_update or (dt.datetime.now(dt.UTC) + _NO_NEXT_UPDATE)
        self._store(url, entry, info, expires)
        if self.shared is not None:
            await self._shared_call(self.shared.write, url, data, expires)

    async def _read_shared(self, url: str) -> tuple[CrlInfo, dt.datetime] | None:
        """The shared row of `url` when another worker or node downloaded it and it is still
        fresh (before its refresh margin), else None: then this worker downloads."""
        row = await self._shared_call(self.shared.read, url) if self.shared else None
        if row is None:
            return None
        der, expires = row
        try:
            info = load_crl(der, source=url)
        except CrlLoadError:
            return None
        if _refresh_due(info, expires.timestamp(), time.time()):
            return None
        return info, expires

    async def _shared_call(self, call, *args):
        """Runs a shared-cache call in a thread; a store failure is logged once and answers None."""
        try:
            result = await asyncio.to_thread(call, *args)
        except Exception as exc:  # any store failure: the shared cache is only an optimisation
            if not self._shared_failing:
                log.warning("shared CRL cache failed (%s): downloading instead", type(exc).__name__)
            self._shared_failing = True
            return None
        if self._shared_failing:
            log.info("shared CRL cache available again")
        self._shared_failing = False
        return result

    def _downloader_here(self) -> _Downloader:
        downloader = self._downloader
        if downloader is None or downloader.loop is not asyncio.get_running_loop():
            downloader = self._downloader = _Downloader(self.limits)
        return downloader

    async def _download(self, url: str) -> bytes:
        """The body at `url` (200 only, at most crl_max_bytes), following same-host redirects,
        within one deadline that starts when a download slot is free."""
        downloader = self._downloader_here()
        async with downloader.slots, asyncio.timeout(self.limits.crl_fetch_timeout):
            target = httpx.URL(url)
            for _ in range(self.limits.crl_max_redirects + 1):
                async with downloader.client.stream("GET", target) as response:
                    if response.next_request is None:
                        return await self._body(response)
                    target = _redirect_target(target, response.next_request.url)
            raise CrlLoadError("too many redirects")

    async def _body(self, response: httpx.Response) -> bytes:
        if response.status_code != 200:
            raise CrlLoadError(f"HTTP {response.status_code}")
        limit = self.limits.crl_max_bytes
        body = bytearray()
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > limit:
                raise CrlLoadError(f"CRL larger than {limit} bytes")
        return bytes(body)

    async def aclose(self) -> None:
        """Closes the shared HTTP client (its connections)."""
        if self._downloader is not None:
            await self._downloader.client.aclose()
            self._downloader = None

    def _store(self, url: str, entry: _Fetched, info: CrlInfo, expires: dt.datetime) -> None:
        changed = entry.crl is None or entry.crl.fingerprint != info.fingerprint
        if entry.crl is not None:
            self._by_issuer.get(entry.crl.issuer_key, {}).pop(url, None)
        entry.crl = info
        entry.failed_until = 0.0
        entry.expires = expires.timestamp()
        self._by_issuer.setdefault(info.issuer_key, {})[url] = info
        if changed:
            self.generation += 1


class CrlStore(CrlSource):
    """The CRLs one Snapshot verifies with: uploaded ones plus the shared fetcher's."""

    def __init__(self, uploaded: Iterable[CrlInfo] = (), fetcher: CrlFetcher | None = None):
        self.uploaded = tuple(uploaded)
        self.fetcher = fetcher
        self._by_issuer: dict[NameKey, list[CrlInfo]] = {}
        for info in self.uploaded:
            self._by_issuer.setdefault(info.issuer_key, []).append(info)
        self._uploaded_generation = hash(tuple(c.fingerprint for c in self.uploaded))

    @property
    def generation(self) -> tuple[int, int]:
        return (self._uploaded_generation, self.fetcher.generation if self.fetcher else 0)

    def candidates(self, issuer_key: NameKey) -> Sequence[CrlInfo]:
        uploaded = self._by_issuer.get(issuer_key, [])
        if self.fetcher is None:
            return uploaded
        return [*uploaded, *self.fetcher.candidates(issuer_key)]

    async def prefetch(self, path: Sequence[x509.Certificate | CertInfo]) -> None:
        """Downloads missing or expired CRLs of the certificates of a path that reaches a trust
        anchor (the caller checks that), within the per-certificate and per-connection URL caps.
        Call before the pipeline so `Verify()` finds them without blocking."""
        fetcher = self.fetcher
        if fetcher is None:
            return
        per_certificate = fetcher.limits.crl_urls_per_certificate
        urls = dict.fromkeys(
            url
            for cert in path
            for url in distribution_urls(cert.cert if isinstance(cert, CertInfo) else cert)[
                :per_certificate
            ]
        )
        if urls:
            await fetcher.ensure(list(urls)[: fetcher.limits.crl_urls_per_connection])


def _redirect_target(current: httpx.URL, target: httpx.URL) -> httpx.URL:
    """A redirect is followed only to http(s) on the same host: a CRL URL is attacker-chosen
    text, and a redirect must not turn it into a request towards another host."""
    if target.scheme not in ("http", "https") or target.host != current.host:
        raise CrlLoadError(f"redirect to another host refused ({target.scheme}://{target.host})")
    return target
