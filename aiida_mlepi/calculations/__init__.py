"""AiiDA processes that compute: calcfunctions for the pure-Python steps, CalcJobs for external codes."""
