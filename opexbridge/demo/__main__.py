"""``python -m opexbridge.demo``: what ``make run`` starts after the services."""

from opexbridge.demo.command import main

main()
