"""The notifier's edges: PostgreSQL (store), Kafka (subscribers), the in-process hub, the
WebSocket endpoint and its uvicorn protocol, REST snapshots, JWKS keys."""
