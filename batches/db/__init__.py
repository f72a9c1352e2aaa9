"""Database helpers with no state of their own: the database's clock, model fields, encryption at rest, case
folding and the planner's statistics."""
