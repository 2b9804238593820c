"""Format backends: each turns one source file into a folder of nodes."""
