"""How things read on pages, their JSON twins and the admin: formatting, clipping, escaping and word diffs."""
