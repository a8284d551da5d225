"""The interLink plugin HTTP API: wire formats and routes."""
