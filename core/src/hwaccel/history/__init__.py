"""History and reports: the DuckDB store, provenance, and the reports drawn from it."""
