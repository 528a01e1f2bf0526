"""Reference adapters, one module per department dataset, registered as `lidm.adapters` entry points."""
