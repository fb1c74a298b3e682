"""Rotation: the background refresher against a real OpenBao, through the real management API."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time

import pytest

from certgate.certs.keyvault import KeyVault, VaultCredentials
from certgate.certs.keyvault.service import service_key_vault
from certgate.certs.stored import certificate_material
from certgate.config.leases import KEY_VAULT_REFRESH, Lease
from certgate.management.keyvault import create_refresher
from tests import pki
from tests.management.server import management_server

CA = pki.ca("Refresher CA")


async def eventually(condition, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)
    return value


def create(api, name: str, identifier: str) -> dict:
    response = api.put(
        f"/certificates/{name}", json={"properties": {"keyVault": {"secretIdentifier": identifier}}}
    )
    assert response.status_code == 201, response.text
    return response.json()["properties"]


def kv_logs(caplog, text: str) -> int:
    return sum(text in r.getMessage() for r in caplog.records if r.name == "certgate.keyvault")


async def test_rotation_within_the_interval_and_pinned_does_not_rotate(
    bao, management, api, tmp_path
):
    """Started as `certgate serve` starts it: token file flag, VAULT_ADDR from the environment."""
    token_file = tmp_path / "vault-token"
    token_file.write_text(bao.root_token)
    notified = asyncio.Event()

    async def on_change() -> None:
        notified.set()

    store = management.store
    vault = service_key_vault(token_file=token_file, environ={"VAULT_ADDR": bao.address})
    refresher = create_refresher(store, vault, refresh_interval=0.5, on_change=on_change)
    refresher.start()
    first, second = pki.server(CA, "one.example"), pki.server(CA, "two.example")
    v1 = bao.put_pfx("rotate/gw", first.pfx(None))
    await asyncio.to_thread(create, api, "latest", bao.url("rotate/gw"))
    await asyncio.to_thread(create, api, "pinned", bao.url("rotate/gw", v1))
    try:
        revision = store.revision()
        started = time.monotonic()
        bao.put_pfx("rotate/gw", second.pfx(None))
        latest = await eventually(
            lambda: (
                (r := store.get("certificates/latest")).properties["thumbprint"]
                == second.thumbprint
                and r
            )
        )
        assert time.monotonic() - started < 0.5 * 1.1 + 1.5  # one interval (+jitter) + slack
        assert certificate_material(latest).thumbprint == second.thumbprint
        assert store.revision() > revision  # the gateways rebuild their Snapshot
        await asyncio.wait_for(notified.wait(), 5)
        async with management.async_client() as client:
            shown = (await client.get("/certificates/latest")).json()["properties"]
            pinned = (await client.get("/certificates/pinned")).json()["properties"]
        assert shown["thumbprint"] == second.thumbprint
        assert shown["keyVault"]["lastStatus"]["code"] == "Success"
        assert pinned["thumbprint"] == first.thumbprint
    finally:
        await refresher.stop()


async def test_one_node_refreshes_and_a_dead_holders_work_passes_on(
    bao, management, api, service_vault
):
    """Two nodes' refreshers on one store: only the lease holder checks the vault; when it dies
    (its loop stops without releasing), the other takes over after the lease timeout."""
    store = management.store
    first, second, third = (pki.server(CA, f"{n}.example") for n in ("one", "two", "three"))
    bao.put_pfx("lease/gw", first.pfx(None))
    await asyncio.to_thread(create, api, "leased", bao.url("lease/gw"))
    leases = {node: Lease(store.engine, KEY_VAULT_REFRESH, node, 1.0) for node in ("n1", "n2")}
    refreshers = {
        node: create_refresher(store, service_vault, refresh_interval=0.2, lease=lease)
        for node, lease in leases.items()
    }

    def thumbprint() -> str:
        return store.get("certificates/leased").properties["thumbprint"]

    refreshers["n1"].start()
    await eventually(lambda: leases["n1"].held)
    refreshers["n2"].start()
    try:
        bao.put_pfx("lease/gw", second.pfx(None))
        await eventually(lambda: thumbprint() == second.thumbprint)
        assert leases["n1"].held and not leases["n2"].held
        refreshers["n1"]._task.cancel()  # node 1 dies: no more renewals, no release
        bao.put_pfx("lease/gw", third.pfx(None))
        await eventually(lambda: thumbprint() == third.thumbprint, timeout=15)
        assert leases["n2"].held
    finally:
        await refreshers["n2"].stop()
    assert not leases["n2"].held  # released at a clean stop: no wait for the next node


def test_a_quiet_vault_writes_nothing(bao, management, api, service_vault):
    bao.put_pfx("quiet/gw", pki.server(CA).pfx(None))
    create(api, "quiet", bao.url("quiet/gw"))
    refresher = create_refresher(management.store, service_vault)
    revision = management.store.revision()
    assert refresher.check_sync(management.store.get("certificates/quiet")) is None
    assert management.store.revision() == revision


def test_vault_stopped_keeps_the_last_good_then_recovers(own_bao, store, tmp_path, caplog):
    caplog.set_level(logging.INFO, "certgate.keyvault")
    vault = KeyVault(VaultCredentials(own_bao.address, token=own_bao.root_token))
    refresher = create_refresher(store, vault)
    with (
        management_server(tmp_path / "mgmt", store=store, key_vault=vault) as management,
        management.client(timeout=30) as api,
    ):
        leaf = pki.server(CA, "steady.example")
        own_bao.put_pfx("down/gw", leaf.pfx(None))
        create(api, "steady", own_bao.url("down/gw"))
        path = "certificates/steady"

        own_bao.stop()
        for _ in range(3):
            refresher.check_sync(store.get(path))
        shown = api.get("/certificates/steady").json()["properties"]
        assert shown["keyVault"]["lastStatus"]["code"] == "VaultUnreachable"
        assert shown["keyVault"]["lastStatus"]["message"]
        assert shown["thumbprint"] == leaf.thumbprint
        assert certificate_material(store.get(path)).thumbprint == leaf.thumbprint
        assert kv_logs(caplog, "refresh failed") == 1  # logged once, not every interval
        failing = api.get("/certificates", params={"isKeyVaultRefreshFailed": "true"}).json()
        assert [c["name"] for c in failing["value"]] == ["steady"]

        own_bao.start()
        own_bao.put_pfx("down/gw", leaf.pfx(None))  # dev mode keeps nothing across restarts
        for _ in range(2):
            refresher.check_sync(store.get(path))
        shown = api.get("/certificates/steady").json()["properties"]
        assert shown["keyVault"]["lastStatus"]["code"] == "Success"
        assert shown["thumbprint"] == leaf.thumbprint
        assert kv_logs(caplog, "recovered") == 1


def test_deleted_secret_keeps_the_last_good(bao, management, api, service_vault):
    leaf = pki.server(CA, "deleted.example")
    bao.put_pfx("gone/gw", leaf.pfx(None))
    create(api, "gone", bao.url("gone/gw"))
    bao.delete("gone/gw")
    refresher = create_refresher(management.store, service_vault)
    refresher.check_sync(management.store.get("certificates/gone"))
    shown = api.get("/certificates/gone").json()["properties"]
    assert shown["keyVault"]["lastStatus"]["code"] == "SecretNotFound"
    assert shown["thumbprint"] == leaf.thumbprint


def test_expired_version_is_applied_and_reported(bao, management, api, service_vault, caplog):
    caplog.set_level(logging.WARNING, "certgate.keyvault")
    now = dt.datetime.now(dt.UTC)
    soon = CA.issue("soon.example", not_after=now + dt.timedelta(days=3))
    expired = CA.issue(
        "old.example", not_before=now - dt.timedelta(days=9), not_after=now - dt.timedelta(days=1)
    )
    bao.put_pfx("expiry/gw", soon.pfx(None))
    created = create(api, "expiry", bao.url("expiry/gw"))
    assert "expires at" in created["keyVault"]["lastStatus"]["message"]
    bao.put_pfx("expiry/gw", expired.pfx(None))
    refresher = create_refresher(management.store, service_vault)
    refresher.check_sync(management.store.get("certificates/expiry"))
    shown = api.get("/certificates/expiry").json()["properties"]
    assert shown["thumbprint"] == expired.thumbprint
    assert shown["keyVault"]["lastStatus"]["code"] == "Success"
    assert "expired at" in shown["keyVault"]["lastStatus"]["message"]
    assert kv_logs(caplog, "expired at") == 1


async def test_refresh_now_for_the_cli(bao, management, api, service_vault):
    first, second = pki.server(CA, "cli1.example"), pki.server(CA, "cli2.example")
    bao.put_pfx("cli/gw", first.pfx(None))
    await asyncio.to_thread(create, api, "cli", bao.url("cli/gw"))
    bao.put_pfx("cli/gw", second.pfx(None))
    refresher = create_refresher(management.store, service_vault, refresh_interval=3600)
    refreshed = await refresher.refresh_now("cli")
    assert refreshed.properties["thumbprint"] == second.thumbprint
    with pytest.raises(KeyError, match="not found"):
        await refresher.refresh_now("nope")
