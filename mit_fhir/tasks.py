"""Storing SDC Tasks (fhir/task.py): each write indexed and queued for the host EHR with it.

The use cases on top (assigning, cancelling, completing with a response, schedules, what is
due) call these inside their own transaction, so a Task and what caused it commit together.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection

from mit_fhir.context import Context
from mit_fhir.fhir.index import sort_date, task_index
from mit_fhir.store.repository import insert, new_id, update
from mit_fhir.sync import outbox

Resource = dict[str, Any]


def store_new(conn: Connection, context: Context, task: Resource,
              business_key: str | None = None) -> Resource:
    """Insert a new Task (version 1); a taken `business_key` raises the store's Conflict."""
    task.setdefault("id", new_id())
    stored = insert(conn, task, task_index(task), sort_date(task), business_key)
    if context.sync_enabled:
        outbox.enqueue(conn, [stored], time.time())
    return stored


def store_version(conn: Connection, context: Context, task: Resource,
                  expected_version: int) -> Resource:
    """Store the next version of a Task; PreconditionFailed if it moved on meanwhile."""
    stored = update(conn, task, task_index(task), expected_version, sort_date(task))
    if context.sync_enabled:
        outbox.enqueue(conn, [stored], time.time())
    return stored
