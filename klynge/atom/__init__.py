"""The Atom village feed format: writing, reading and scanning."""
