"""``opexbridge demo``: the suite at work, for a newcomer, right after ``make run``.

A handful of demo users are registered (user_sync provisions them on OPEX), funded on
OPEX, and then place a scripted set of orders (limit, market, stop, cancels, a
close-position, and orders the risk engine must refuse) followed by a slow stream; a
terminal view shows each command, the risk engine's decision and what the gateway and
OPEX made of it, and the notifier serves a page (``/demo``) showing one demo user's
orders and positions live over its WebSocket.

- `scenario`: the users, the script and the stream (pure);
- `view`: the terminal view (pure, fed with decoded messages);
- `runner`: the demo against a running suite;
- ``python -m opexbridge.demo`` / ``opexbridge demo``: the command (`command`).
"""

from opexbridge.demo.command import demo_command, main

__all__ = ["demo_command", "main"]
