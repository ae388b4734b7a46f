"""user_sync: turns the platform's UserRegistered into a working OPEX account.

See README.md beside this file; the composition root is `services.user_sync.app`.
"""
