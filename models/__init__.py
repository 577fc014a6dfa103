"""Model sources (registry, local folders, the tiny family), loading, and artifacts."""
