"""The earshot application: command line, batch scoring and reports, on top of ``model``."""
