"""Generic line formats: CSV and JSON lines, with a field mapping from the scheme."""
