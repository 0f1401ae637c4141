"""Writes to sessions, by job: lifecycle (every transition) and client_events (what the client reports)."""
