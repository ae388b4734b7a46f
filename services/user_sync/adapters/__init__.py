"""user_sync's adapters: the database (`store`), Kafka (`kafka`)."""
