"""End-to-end tier: kubectl on LOCAL, the real interLink chain, the sidecar, REMOTE."""
