"""Reads: QuerySet work for pages, commands, exports and health, one module per concern. No state changes here."""
