"""退役军人事务局 datasets (a department new to the gateway, in the tests)."""
