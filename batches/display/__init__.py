"""How values read on pages: clipping, escaping bidirectional controls, and word diffs. Leaves: they read nothing."""
