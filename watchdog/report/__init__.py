"""Reporters: they only read (the event log, or a report built from it)."""
