"""The risk engine's database: the journal, limits and control requests."""
