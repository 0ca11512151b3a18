"""The public API is what `raas.__all__` says: if a name drifts out of it, or something private
leaks in, users' imports break silently. This pins it."""

import raas

EXPECTED = {
    "AsyncClient", "Client", "Conversation",
    "BatchRejected", "ConflictError", "Contract", "ContractError", "Entry", "Episode", "Event",
    "EventError", "Invoice", "InvoiceLine", "Outcome", "Period", "RaasError", "Settlement",
    "SettlementError", "SettlementReport", "SimConfig", "Simulation", "StoreError",
    "derive_episodes", "event_entry", "invoice_json", "judge", "judge_episode", "load_contract",
    "make_event", "month_period", "parse_contract", "settle",
}  # fmt: skip


def test_all_is_exactly_the_public_api() -> None:
    assert set(raas.__all__) == EXPECTED
    for name in raas.__all__:
        assert getattr(raas, name) is not None


def test_every_public_name_is_documented() -> None:
    for name in raas.__all__:
        assert getattr(raas, name).__doc__, f"raas.{name} has no docstring"
