"""notifier: authenticated WebSocket push of order, position and account events with
gap-free resume, and REST snapshots of the same state (README.md)."""
