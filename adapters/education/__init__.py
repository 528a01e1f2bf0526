"""教育局 datasets."""
