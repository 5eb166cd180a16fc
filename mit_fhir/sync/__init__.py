"""Sync to the host EHR: the transactional outbox and the worker that drains it."""
