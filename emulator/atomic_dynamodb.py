"""DynamoDB's item operations are atomic; moto's are not.

moto reads an item, checks a ConditionExpression and writes it back without a lock, so two threads
of one process can both pass the same condition (seen: three of ten concurrent wake-up claims
succeeding on a loaded 2-core machine). DynamoDB serializes writes to an item, so a conditional
write lets exactly one caller win. `atomic_dynamodb()` restores that guarantee in tests by holding
one lock around each of moto's item operations; it changes no result, only interleaving. The
lock also covers each whole request (moto builds a GetItem's answer from the live item after the
backend call returned, so a concurrent UpdateItem could change it mid-way: "dictionary changed size
during iteration"; DynamoDB answers with a consistent copy).
"""

from __future__ import annotations

import threading
from contextlib import ExitStack, contextmanager
from typing import Any, Callable, Iterator
from unittest import mock

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.responses import DynamoHandler

OPERATIONS = ("put_item", "update_item", "delete_item", "transact_write_items", "get_item", "query", "scan")
_LOCK = threading.RLock()


def _locked(original: Callable[..., Any]) -> Callable[..., Any]:
    def operation(self: DynamoDBBackend, *args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return original(self, *args, **kwargs)

    return operation


@contextmanager
def atomic_dynamodb() -> Iterator[None]:
    with ExitStack() as stack:
        for name in OPERATIONS:
            stack.enter_context(mock.patch.object(DynamoDBBackend, name, _locked(getattr(DynamoDBBackend, name))))
        stack.enter_context(mock.patch.object(DynamoHandler, "call_action", _locked(DynamoHandler.call_action)))
        yield
