"""The command line, evaluation and benchmark scripts, and committed results."""
