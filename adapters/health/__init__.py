"""Health commission (卫生健康委) datasets."""
