"""农业农村局 datasets."""
