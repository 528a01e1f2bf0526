"""残联 datasets."""
