"""Carpools tied to events: residents offer or ask for seats without an account (issue 14)."""
