"""Results, the top layer: what the runs' records become (tables, statistics, figures, the report, bench)."""
