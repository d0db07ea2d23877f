"""`python -m embeddings ...`: the command-line entry point."""

from embeddings.cli import main

main()
