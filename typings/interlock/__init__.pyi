"""Type checking only: mypy sees core/ and plugins/ under their installed names (see pyproject)."""
