"""The Python SDK: `raas.Client` and `raas.AsyncClient` send events to a raas service."""

from raas.sdk.async_client import AsyncClient
from raas.sdk.client import Client
from raas.sdk.conversation import Conversation
from raas.sdk.delivery import (
    ClientClosedError,
    ClientError,
    ClientStats,
    DeliveryError,
    QueueFullError,
)

__all__ = [
    "AsyncClient",
    "Client",
    "ClientClosedError",
    "ClientError",
    "ClientStats",
    "Conversation",
    "DeliveryError",
    "QueueFullError",
]
