"""医疗保障局 datasets."""
