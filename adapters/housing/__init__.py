"""住房和城乡建设局 datasets."""
