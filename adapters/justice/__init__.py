"""司法局 datasets."""
