"""Mail server log formats."""
