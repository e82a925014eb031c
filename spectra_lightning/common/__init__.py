"""What every wing shares and nothing of ours lies below: the project's errors and warnings, whole-or-nothing
file writes, the memory allocator's setting, and a run directory's layout."""
