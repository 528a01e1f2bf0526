"""Civil affairs (民政局) datasets."""
