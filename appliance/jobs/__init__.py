"""Jobs: queue, lifecycle, progress and release of every guest job."""
