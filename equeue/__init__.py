"""equeue: a virtual waiting room for Python web apps.

The core imports no web framework; the adapters live in ``equeue.adapters.flask``
(``pip install 'equeue[flask]'``) and ``equeue.adapters.starlette``
(``pip install 'equeue[starlette]'``).
"""

from __future__ import annotations

from .config import Settings
from .errors import (
    ConfigurationError,
    EqueueError,
    InvalidPayload,
    StoreError,
    TokenError,
)
from .room import AsyncWaitingRoom, WaitingRoom
from .rules import RoomRules
from .stores import (
    AsyncMemoryStore,
    AsyncQueueStore,
    MemoryStore,
    Placement,
    QueueStore,
    RoomSnapshot,
    TickResult,
    async_store_from_url,
    store_from_url,
)
from .tokens import Admission, TokenSigner, VisitorPass, admission_cookie_name

__version__ = "0.1.0.dev0"

__all__ = [
    "Admission",
    "AsyncMemoryStore",
    "AsyncQueueStore",
    "AsyncWaitingRoom",
    "ConfigurationError",
    "EqueueError",
    "InvalidPayload",
    "MemoryStore",
    "Placement",
    "QueueStore",
    "RoomRules",
    "RoomSnapshot",
    "Settings",
    "StoreError",
    "TickResult",
    "TokenError",
    "TokenSigner",
    "VisitorPass",
    "WaitingRoom",
    "__version__",
    "admission_cookie_name",
    "async_store_from_url",
    "store_from_url",
]
