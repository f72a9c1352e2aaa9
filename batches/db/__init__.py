"""Database helpers with no state of their own: the database's clock, model fields, encryption at rest, case
folding, and strict JSON (what it accepts can be stored in a JSON column)."""
