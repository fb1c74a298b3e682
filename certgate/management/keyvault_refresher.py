"""Keeps key-vault certificates current: follows versionless references, records `lastStatus`.

Each check is cheap (`current_version`, a metadata read); the secret is fetched and parsed only
when its version moved or the last check failed. A stored certificate is rewritten only when
something changed (a new version, a new status), so a quiet vault never bumps the store's
revision and never makes the gateways rebuild their Snapshot. On failure the stored certificate
stays as it was (the last good one keeps serving); failures and recoveries are logged once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from certgate.certs.keyvault.errors import KeyVaultError
from certgate.certs.keyvault.reference import parse_identifier
from certgate.certs.keyvault.secret import FetchedSecret
from certgate.certs.keyvault.vault import KeyVault
from certgate.config.leases import Lease
from certgate.config.store import PreconditionFailed, Resource, Store
from certgate.observe.metrics import KEY_VAULT_REFRESHES

log = logging.getLogger("certgate.keyvault")

SUCCESS = "Success"
CERTIFICATE_KIND = "certificate"
VERSION_SECRET = "keyVaultVersion"  # sealed with the certificate: internal, never presented
DEFAULT_INTERVAL = 60.0
EXPIRY_WARNING = dt.timedelta(days=30)

# (properties, secrets, fetched) -> (properties, secrets): how a fetched version is stored
# (the certificates kind decides; see certgate.management.keyvault.store_fetched).
ApplyFetched = Callable[[dict, dict, FetchedSecret], tuple[dict, dict]]


@dataclass(frozen=True)
class SyncResult:
    """What one check decided: new `properties`/`secrets` to write (None: nothing changed)."""

    properties: dict | None
    secrets: dict | None
    status: dict


def status(code: str, message: str, now: dt.datetime) -> dict:
    stamp = now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"code": code, "message": message, "timeStampUtc": stamp}


def expiry_note(not_after: dt.datetime | None, now: dt.datetime, warning=EXPIRY_WARNING) -> str:
    """Empty, or the warning shown in `lastStatus.message` for an expired/soon-expiring version."""
    if not_after is None:
        return ""
    when = not_after.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if not_after <= now:
        return f"the certificate in the vault expired at {when}; it is applied anyway"
    if not_after - now <= warning:
        return f"the certificate in the vault expires at {when}"
    return ""


def sync_certificate(
    resource: Resource,
    vault: KeyVault,
    *,
    force: bool,
    apply: ApplyFetched,
    now: dt.datetime | None = None,
) -> SyncResult:
    """Checks one key-vault certificate. `force` (refreshSecret) always re-reads the secret and
    always returns properties to write; otherwise a check that changes nothing writes nothing."""
    now = now or dt.datetime.now(dt.UTC)
    key_vault = dict(resource.properties.get("keyVault") or {})
    identifier = key_vault["secretIdentifier"]
    client_id = key_vault.get("identityClientId")
    last = key_vault.get("lastStatus") or {}
    stored_version = resource.secrets.get(VERSION_SECRET)
    name = resource.name
    try:
        quiet = not force and last.get("code") == SUCCESS and stored_version is not None
        if quiet and vault.current_version(identifier, client_id) == stored_version:
            return _unchanged_version(resource, key_vault, last, now)
        fetched = vault.fetch(identifier, client_id)
    except KeyVaultError as error:
        new_status = status(error.code, error.message, now)
        if last.get("code") != error.code:
            log.warning(
                "certificate %s: key vault refresh failed: %s (the last good certificate stays)",
                name,
                error,
            )
        elif not force:
            return SyncResult(None, None, last)
        return SyncResult(
            {**resource.properties, "keyVault": {**key_vault, "lastStatus": new_status}},
            dict(resource.secrets),
            new_status,
        )
    if last.get("code") not in (None, SUCCESS):
        log.info("certificate %s: key vault refresh recovered", name)
    note = expiry_note(fetched.not_after, now)
    if fetched.version != stored_version:
        if stored_version is not None:
            log.info(
                "certificate %s: rotated to version %s (thumbprint %s)",
                name,
                fetched.version,
                fetched.material.thumbprint,
            )
        if note:
            log.warning("certificate %s: %s", name, note)
    new_status = status(SUCCESS, note, now)
    properties, secrets = apply(resource.properties, dict(resource.secrets), fetched)
    properties = {**properties, "keyVault": {**key_vault, "lastStatus": new_status}}
    return SyncResult(properties, {**secrets, VERSION_SECRET: fetched.version}, new_status)


def _unchanged_version(resource: Resource, key_vault: dict, last: dict, now) -> SyncResult:
    """The vault still holds the stored version: write only if its expiry note changed."""
    not_after = _parse_time(resource.properties.get("expirationDate"))
    note = expiry_note(not_after, now)
    if note == (last.get("message") or ""):
        return SyncResult(None, None, last)
    if note:
        log.warning("certificate %s: %s", resource.name, note)
    new_status = status(SUCCESS, note, now)
    return SyncResult(
        {**resource.properties, "keyVault": {**key_vault, "lastStatus": new_status}},
        dict(resource.secrets),
        new_status,
    )


def _parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def is_key_vault_certificate(resource: Resource) -> bool:
    return bool((resource.properties.get("keyVault") or {}).get("secretIdentifier"))


def follows_latest(resource: Resource) -> bool:
    """A versionless reference rotates; a versioned one is pinned (as in APIM)."""
    if not is_key_vault_certificate(resource):
        return False
    try:
        return not parse_identifier(resource.properties["keyVault"]["secretIdentifier"]).pinned
    except KeyVaultError:
        return False


class KeyVaultRefresher:
    """Background task checking every versionless reference each `refresh_interval` seconds
    (+/- `jitter`, a fraction), in the process that owns the store (the management process).
    `on_change` is awaited after each write it makes (as the management API does after its
    writes), for a process that rebuilds its Snapshot on notification rather than by polling
    the store's revision. With several nodes on one store, `lease` (`certgate.config.leases`)
    makes one node do the checks: the others only renew their bid every `lease.renew_every`
    seconds and take over when the holder stops renewing."""

    def __init__(
        self,
        store: Store,
        vault: KeyVault,
        *,
        apply: ApplyFetched,
        refresh_interval: float = DEFAULT_INTERVAL,
        jitter: float = 0.1,
        kind: str = CERTIFICATE_KIND,
        on_change: Callable[[], Awaitable[None]] | None = None,
        lease: Lease | None = None,
    ) -> None:
        if refresh_interval <= 0:
            raise ValueError("refresh_interval must be > 0 seconds")
        self.store = store
        self.vault = vault
        self.refresh_interval = refresh_interval
        self.jitter = min(max(jitter, 0.0), 0.5)
        self.kind = kind
        self.apply = apply
        self.on_change = on_change
        self.lease = lease
        self._task: asyncio.Task | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        """Starts the loop as a task of the running event loop (idempotent)."""
        if self._task is None or self._task.done():
            self._stopping = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="key-vault-refresher"
            )

    async def stop(self) -> None:
        if self._task is not None:
            self._stopping.set()
            await self._task
            self._task = None

    async def refresh_now(self, certificate_id: str) -> Resource:
        """Re-reads the secret now and stores the outcome (`lastStatus`, and a new version if
        any); returns the stored certificate. Raises store.NotFound / KeyError for a
        certificate that does not exist or has no key vault reference."""
        written = await asyncio.to_thread(self.refresh_now_sync, certificate_id)
        await self._changed()
        return written

    def refresh_now_sync(self, certificate_id: str) -> Resource:
        path = f"certificates/{certificate_id}"
        for _attempt in range(3):
            resource = self.store.get(path)
            if resource is None:
                raise KeyError(f"certificate '{certificate_id}' not found")
            if not is_key_vault_certificate(resource):
                raise KeyError(f"certificate '{certificate_id}' has no key vault reference")
            written = self._write(resource, force=True)
            if written is not None:
                return written
        raise PreconditionFailed(path)

    def check_sync(self, resource: Resource) -> Resource | None:
        """One background check of one certificate; returns the rewritten row, if any."""
        return self._write(resource, force=False)

    def _write(self, resource: Resource, *, force: bool) -> Resource | None:
        result = sync_certificate(resource, self.vault, force=force, apply=self.apply)
        KEY_VAULT_REFRESHES.labels(result.status.get("code") or "").inc()
        if result.properties is None:
            return None
        try:
            written, _ = self.store.put(
                resource.kind,
                resource.path,
                result.properties,
                secrets=result.secrets,
                references=self.store.references(resource.path),
                if_match=resource.etag,
            )
        except PreconditionFailed:
            return None  # changed meanwhile (a PUT); the next check sees the new row
        return written

    async def _run(self) -> None:
        due: dict[str, float] = {}
        lease = self.lease
        while not self._stopping.is_set():
            if lease is not None and not await self._holds(lease):
                due.clear()
                await self._sleep(lease.renew_every)
                continue
            try:
                rotating = await asyncio.to_thread(self._rotating)
            except Exception:
                log.exception("key vault refresher: cannot list certificates")
                rotating = []
            now = time.monotonic()
            present = {r.path for r in rotating}
            for path in list(due):
                if path not in present:
                    del due[path]
            for resource in rotating:
                if resource.path not in due:
                    due[resource.path] = now + self._first_delay(resource)
            for resource in rotating:
                if self._stopping.is_set():
                    break
                if due[resource.path] <= time.monotonic():
                    try:
                        if await asyncio.to_thread(self.check_sync, resource) is not None:
                            await self._changed()
                    except Exception:
                        log.exception("key vault refresher: checking %s failed", resource.name)
                    due[resource.path] = time.monotonic() + self._delay()
            wake = min([*due.values(), time.monotonic() + self.refresh_interval])
            if lease is not None:
                wake = min(wake, time.monotonic() + lease.renew_every)
            await self._sleep(wake - time.monotonic())
        if lease is not None:
            await asyncio.to_thread(self._release, lease)

    async def _sleep(self, seconds: float) -> None:
        """Waits `seconds` or until stop() is called."""
        try:
            await asyncio.wait_for(self._stopping.wait(), max(seconds, 0.01))
        except TimeoutError:
            pass

    async def _holds(self, lease: Lease) -> bool:
        try:
            return await asyncio.to_thread(lease.hold)
        except Exception:
            log.exception("key vault refresher: cannot renew the lease; checks paused")
            return False

    def _release(self, lease: Lease) -> None:
        try:
            lease.release()
        except Exception:
            log.exception("key vault refresher: cannot release the lease")

    async def _changed(self) -> None:
        if self.on_change is not None:
            try:
                await self.on_change()
            except Exception:
                log.exception("key vault refresher: on_change failed after a write")

    def _rotating(self) -> list[Resource]:
        return [r for r in self.store.list(self.kind) if follows_latest(r)]

    def _delay(self) -> float:
        spread = self.refresh_interval * self.jitter
        return self.refresh_interval + random.uniform(-spread, spread)

    def _first_delay(self, resource: Resource) -> float:
        """Counts from the last recorded check, so a certificate created (and fetched) just
        before it is discovered is not checked twice as late as the interval promises."""
        last = _parse_time(
            ((resource.properties.get("keyVault") or {}).get("lastStatus") or {}).get(
                "timeStampUtc"
            )
        )
        if last is None:
            return 0.0
        elapsed = (dt.datetime.now(dt.UTC) - last).total_seconds()
        return max(0.0, self._delay() - elapsed)
