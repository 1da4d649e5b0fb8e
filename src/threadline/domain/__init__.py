"""Plain typed objects and rules with no I/O."""
