"""Where CRLs come from: operator uploads and the certificates' http CRL distribution points.

`Verify()` runs inside policy evaluation and must never wait on the network, so the gateway
awaits `CrlStore.prefetch(leaf, chain)` before the pipeline whenever a client certificate is
present; verification then reads what is cached (`candidates`). Fetched CRLs are kept until their
nextUpdate and refreshed in the background shortly before; a distribution point that fails is
remembered for a short while, so a down CRL server costs one timeout, not one per request.
Every change to the set of usable CRLs bumps `generation`, which invalidates cached results.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Iterable, Sequence

import httpx
from cryptography import x509

from certgate.certs.certinfo import CertInfo, NameKey
from certgate.certs.crlinfo import CrlInfo, CrlLoadError, load_crl
from certgate.certs.revocation import CrlSource

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 3.0
FAILURE_BACKOFF = 30.0
REFRESH_MARGIN = 0.1
MAX_CRL_BYTES = 20 * 1024 * 1024


def distribution_urls(cert: x509.Certificate) -> list[str]:
    """The http(s) URLs of a certificate's CRL distribution points."""
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except (x509.ExtensionNotFound, ValueError, x509.DuplicateExtension):
        return []
    return [
        name.value
        for point in points
        for name in point.full_name or ()
        if isinstance(name, x509.UniformResourceIdentifier)
        and name.value.lower().startswith(("http://", "https://"))
    ]


class _Fetched:
    __slots__ = ("crl", "expires", "failed_until", "refreshing")

    def __init__(self) -> None:
        self.crl: CrlInfo | None = None
        self.expires = 0.0
        self.failed_until = 0.0
        self.refreshing: asyncio.Task | None = None


class CrlFetcher:
    """Process-wide cache of CRLs downloaded from distribution points (shared by all Snapshots)."""

    def __init__(self, timeout: float = FETCH_TIMEOUT, failure_backoff: float = FAILURE_BACKOFF):
        self.timeout = timeout
        self.failure_backoff = failure_backoff
        self.generation = 0
        self._by_url: dict[str, _Fetched] = {}
        self._by_issuer: dict[NameKey, dict[str, CrlInfo]] = {}
        self._inflight: dict[str, asyncio.Task] = {}

    def candidates(self, issuer_key: NameKey) -> list[CrlInfo]:
        return list(self._by_issuer.get(issuer_key, {}).values())

    async def ensure(self, urls: Iterable[str]) -> None:
        """Fetches every URL with no fresh CRL (concurrently); schedules refreshes of aging ones."""
        now = time.time()
        waits = []
        for url in dict.fromkeys(urls):
            entry = self._by_url.setdefault(url, _Fetched())
            if entry.crl is not None and now < entry.expires:
                lifetime = entry.expires - entry.crl.this_update.timestamp()
                if entry.expires - now < lifetime * REFRESH_MARGIN and not entry.refreshing:
                    entry.refreshing = asyncio.get_running_loop().create_task(self._fetch(url))
                continue
            if now < entry.failed_until:
                continue
            waits.append(self._start(url))
        if waits:
            await asyncio.gather(*waits, return_exceptions=True)

    def _start(self, url: str) -> asyncio.Task:
        task = self._inflight.get(url)
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(self._fetch(url))
            self._inflight[url] = task
        return task

    async def _fetch(self, url: str) -> None:
        entry = self._by_url.setdefault(url, _Fetched())
        try:
            info = load_crl(await self._download(url), source=url)
        except (httpx.HTTPError, CrlLoadError, OSError) as exc:
            log.warning("CRL download from %s failed: %s", url, exc)
            entry.failed_until = time.time() + self.failure_backoff
            return
        finally:
            entry.refreshing = None
        self._store(url, entry, info)

    async def _download(self, url: str) -> bytes:
        """The body at `url` (200 only, at most MAX_CRL_BYTES), within the timeout."""
        async with (
            httpx.AsyncClient(timeout=self.timeout, follow_redirects=True) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise CrlLoadError(f"HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_CRL_BYTES:
                    raise CrlLoadError("CRL larger than 20 MiB")
        return bytes(body)

    def _store(self, url: str, entry: _Fetched, info: CrlInfo) -> None:
        changed = entry.crl is None or entry.crl.fingerprint != info.fingerprint
        if entry.crl is not None:
            self._by_issuer.get(entry.crl.issuer_key, {}).pop(url, None)
        entry.crl = info
        entry.failed_until = 0.0
        next_update = info.next_update or (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
        entry.expires = next_update.timestamp()
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

    async def prefetch(
        self, leaf: x509.Certificate | CertInfo, chain: Sequence[x509.Certificate | CertInfo] = ()
    ) -> None:
        """Downloads missing or expired CRLs of every presented certificate (timeout ~3 s each,
        concurrently). Call before the pipeline so `Verify()` finds them without blocking."""
        if self.fetcher is None:
            return
        urls = [
            url
            for cert in (leaf, *chain)
            for url in distribution_urls(cert.cert if isinstance(cert, CertInfo) else cert)
        ]
        if urls:
            await self.fetcher.ensure(urls)
