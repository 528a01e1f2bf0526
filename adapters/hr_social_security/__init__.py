"""人力资源和社会保障局 datasets."""
