"""Inbound security: who is calling (tokens, SMART scopes), audit, headers."""
