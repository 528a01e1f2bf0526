"""应急管理局 datasets."""
