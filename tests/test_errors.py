"""raas errors cross process boundaries whole: pickled and loaded, each keeps its class, its
message and its fields.

What would break: an error whose __init__ takes its fields (not its message) failing to load
in the parent of a worker process, or arriving without the fields a caller reads.
"""

from __future__ import annotations

import pickle

import pytest

from raas.errors import (
    BatchRejected,
    ConflictError,
    ContractError,
    EventError,
    RaasError,
    StoreError,
)
from raas.ledger.checkpoint import CheckpointError

ERRORS = [
    EventError("event-1", "data.cost", "is negative", 3),
    BatchRejected([EventError("event-1", "time", "is naive", 0), EventError(None, "body", "x")]),
    ConflictError("acme", "urn:s", "event-1", "ab" * 32, "cd" * 32),
    ContractError("acme.yaml", 12, "outcomes.resolved.price", "is not a decimal"),
    StoreError("could not read the ledger"),
    CheckpointError("the note is unsigned"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda error: type(error).__name__)
def test_an_error_pickles_with_its_fields(error: RaasError) -> None:
    loaded = pickle.loads(pickle.dumps(error))

    assert type(loaded) is type(error)
    assert str(loaded) == str(error)
    assert loaded.args == error.args
    assert set(vars(loaded)) == set(vars(error))
    for name, value in vars(error).items():
        if isinstance(value, list):
            assert [str(item) for item in getattr(loaded, name)] == [str(item) for item in value]
            assert [vars(item) for item in getattr(loaded, name)] == [vars(i) for i in value]
        else:
            assert getattr(loaded, name) == value


def test_a_loaded_error_is_raised_and_caught_as_its_class() -> None:
    loaded = pickle.loads(pickle.dumps(EventError("event-9", "tenant", "is empty")))

    with pytest.raises(EventError, match="field 'tenant': is empty") as caught:
        raise loaded
    assert (caught.value.event_id, caught.value.field, caught.value.index) == (
        "event-9",
        "tenant",
        None,
    )
