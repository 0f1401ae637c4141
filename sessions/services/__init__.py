"""Writes to sessions, by job: lifecycle (every transition), client_events (what the client reports) and
callbacks (follow-ups the agent promised)."""
