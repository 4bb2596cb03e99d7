"""One folder per experiment; each ``<name>/experiment.py`` registers itself (discovered, no list)."""
