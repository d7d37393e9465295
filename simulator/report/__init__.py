"""A run read back and judged: its history, the invariants, measured figures, and the JSON
and HTML reports."""
