"""`python -m reversesync`: the command line."""

from .cli import main

main()
