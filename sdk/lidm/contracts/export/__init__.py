"""Exporters of the catalogue; each format is one module with a `write(catalog, out_dir)` function."""
