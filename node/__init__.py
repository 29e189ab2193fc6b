"""The Klynge village node: one small aiohttp service per village."""
