"""equeue: a virtual waiting room for Python web apps."""

from __future__ import annotations

from .errors import (
    ConfigurationError,
    EqueueError,
    InvalidPayload,
    StoreError,
    TokenError,
)
from .rules import RoomRules
from .tokens import Admission, TokenSigner, VisitorPass, admission_cookie_name

__version__ = "0.1.0.dev0"

__all__ = [
    "Admission",
    "ConfigurationError",
    "EqueueError",
    "InvalidPayload",
    "RoomRules",
    "StoreError",
    "TokenError",
    "TokenSigner",
    "VisitorPass",
    "__version__",
    "admission_cookie_name",
]
