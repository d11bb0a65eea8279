"""Stage 6, report: metrics.json, report.md and report.html with their figures."""
