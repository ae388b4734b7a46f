"""The ``opexbridge`` command: ops tools over the whole suite (topics, migrations,
the local runtime, and later dashboards and dead letters)."""
