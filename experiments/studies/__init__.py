"""Scripts behind the committed result folders that ``robodecode`` commands do not cover.

Each module's docstring starts with the command that reproduces its part of
``experiments/results/<question>/``; the folder's README says which numbers it made.
"""
