"""One module per department: the ``SOURCES`` its datasets' sample sources are built from."""
