"""The service store on SQLite and on PostgreSQL: the same behaviour, every read scoped by
tenant, the audit log written with each administrative change."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal

import msgspec
import psycopg
import pytest
from click.testing import CliRunner

from raas.cli.main import main
from raas.ingest.otlp import ModelPrice
from raas.migrations import current, heads, upgrade
from raas.service.apikeys import create_api_key, verify_api_key
from raas.service.sql_store import PostgresServiceStore
from raas.service.store import (
    ContractVersion,
    ServiceStore,
    ServiceStoreError,
    utc_now,
)
from settlement_runs import queued_run


def contract_version(tenant: str, version: int = 1) -> ContractVersion:
    return ContractVersion(
        tenant=tenant,
        contract="support",
        version=version,
        effective_from=date(2026, 11, 1),
        effective_until=None,
        document=f"contract: support\nversion: {version}\n",
        document_sha256="0" * 64,
        created_at=utc_now(),
        created_by="test",
    )


def test_keys_are_shown_once_stored_hashed_and_revocable(store: ServiceStore) -> None:
    token, key = create_api_key(store, "acme", "buyer", "finance", "cli")
    assert token.startswith(f"raas_{key.key_id}_")
    stored = store.api_key(key.key_id)
    assert stored is not None and token not in repr(stored)
    assert verify_api_key(store, token) == stored
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert verify_api_key(store, forged) is None
    assert store.revoke_api_key("globex", key.key_id, "cli") is None, "another tenant's key"
    assert verify_api_key(store, token) is not None
    revoked = store.revoke_api_key("acme", key.key_id, "cli")
    assert revoked is not None and revoked.revoked_at is not None
    assert verify_api_key(store, token) is None
    actions = [record.action for record in store.audit_log("acme")]
    assert actions == ["tenant.create", "apikey.create", "apikey.revoke"]
    assert store.audit_log("globex") == []


def test_contract_versions_and_runs_are_read_only_by_their_tenant(store: ServiceStore) -> None:
    for tenant in ("acme", "globex"):
        store.ensure_tenant(tenant, "cli")
    store.add_contract_version("acme", contract_version("acme"), "key:a")
    with pytest.raises(ServiceStoreError):
        store.add_contract_version("acme", contract_version("acme"), "key:a")
    with pytest.raises(ServiceStoreError):
        store.add_contract_version("globex", contract_version("acme", 2), "key:a")
    assert store.contract_version("globex", "support", 1) is None
    assert store.contract_versions("globex") == []
    read = store.contract_version("acme", "support", 1)
    assert read is not None and read.effective_from == date(2026, 11, 1)
    run = msgspec.structs.replace(queued_run("acme", "run-1"), status="running")
    store.add_settlement_run("acme", run)
    assert store.settlement_run("globex", "run-1") is None
    with pytest.raises(ServiceStoreError):
        store.finish_settlement_run("globex", "run-1", "failed", error="no")
    finished = store.finish_settlement_run("acme", "run-1", "succeeded", invoice_id="inv-1")
    assert (finished.status, finished.invoice_id) == ("succeeded", "inv-1")
    assert finished.finished_at is not None
    assert store.settlement_runs("acme") == [finished]
    assert store.settlement_runs("globex") == []
    actions = [record.action for record in store.audit_log("acme")]
    assert actions == [
        "tenant.create",
        "contract.create",
        "settlement.start",
        "settlement.succeeded",
    ]


def test_a_key_of_an_unknown_tenant_is_refused(store: ServiceStore) -> None:
    token, key = create_api_key(store, "acme", "ingest", "", "cli")
    with pytest.raises(ServiceStoreError):
        store.add_api_key(
            type(key)(
                key_id="0" * 12,
                tenant="nobody",
                scope="ingest",
                label="",
                secret_sha256="0" * 64,
                created_at=utc_now(),
            ),
            "cli",
        )
    assert [tenant.name for tenant in store.tenants()] == ["acme"]
    assert verify_api_key(store, token) is not None


def test_price_tables_keep_exact_decimals_are_replaced_whole_and_stay_in_their_tenant(
    store: ServiceStore,
) -> None:
    small = ModelPrice(
        tier="small",
        input_token_price=Decimal("0.000000150"),
        output_token_price=Decimal("0.0000006"),
    )
    large = ModelPrice(
        tier="large",
        input_token_price=Decimal("0.0000025"),
        output_token_price=Decimal("0.00001"),
        currency="EUR",
    )
    assert store.model_prices("acme") == {}
    store.set_model_prices("acme", {"gpt-4o-mini": small, "gpt-4o": large}, "key:a")
    read = store.model_prices("acme")
    assert read == {"gpt-4o-mini": small, "gpt-4o": large}
    # Exact to the digit written: 0.000000150 is not turned into a float on either database.
    assert read["gpt-4o-mini"].input_token_price.as_tuple().exponent == -9
    assert store.model_prices("globex") == {}
    store.set_model_prices("acme", {"gpt-4o": small}, "key:a")
    assert store.model_prices("acme") == {"gpt-4o": small}
    store.set_model_prices("globex", {"gpt-4o": large}, "key:g")
    assert store.model_prices("acme") == {"gpt-4o": small}
    assert [record.action for record in store.audit_log("acme")] == ["prices.set"] * 2


def test_raas_db_upgrade_adds_the_price_table_to_a_database_of_the_revision_before(
    empty_postgres_url: str,
) -> None:
    upgrade(empty_postgres_url, "0003_disputes")
    done = CliRunner().invoke(main, ["db", "upgrade", "--db", empty_postgres_url])
    assert done.exit_code == 0, done.output
    assert current(empty_postgres_url) == heads()[0]
    with psycopg.connect(empty_postgres_url) as connection:
        row = connection.execute("SELECT to_regclass('service_model_prices')").fetchone()
    assert row is not None and row[0] is not None


def test_queued_runs_are_claimed_oldest_first_once_each_of_every_tenant(
    store: ServiceStore,
) -> None:
    store.add_settlement_run("acme", queued_run("acme", "run-1"))
    store.add_settlement_run("globex", queued_run("globex", "run-2"))
    first = store.claim_settlement_run()
    assert first is not None and (first.tenant, first.id, first.status) == (
        "acme",
        "run-1",
        "running",
    )
    assert store.settlement_run("acme", "run-1") == first
    second = store.claim_settlement_run()
    assert second is not None and (second.tenant, second.id) == ("globex", "run-2")
    assert store.claim_settlement_run() is None
    failed = store.finish_settlement_run("acme", "run-1", "failed", error="why")
    assert (failed.status, failed.error) == ("failed", "why")
    assert store.claim_settlement_run() is None, "an ended run is not claimed again"


def test_workers_claiming_at_once_each_get_other_runs(postgres_url: str) -> None:
    runs = 40
    setup = PostgresServiceStore(postgres_url)
    for number in range(runs):
        setup.add_settlement_run("acme", queued_run("acme", f"run-{number:02}"))
    workers = [PostgresServiceStore(postgres_url) for _ in range(4)]
    claimed: list[list[str]] = [[] for _ in workers]

    def claim_all(index: int) -> None:
        while (run := workers[index].claim_settlement_run()) is not None:
            claimed[index].append(run.id)

    try:
        with ThreadPoolExecutor(len(workers)) as pool:
            list(pool.map(claim_all, range(len(workers))))
        claim_all(0)  # a claim that lost a race answers None while runs are left
        every = [run_id for ids in claimed for run_id in ids]
        assert sorted(every) == [f"run-{number:02}" for number in range(runs)]
    finally:
        for opened in [setup, *workers]:
            opened.close()
