"""`python -m reduce` runs the command line."""
from .cli import main

main()
