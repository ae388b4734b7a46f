"""The order gateway's adapters: its tables and their reads/writes, and OPEX's answers
mapped to the domain's observations."""
