"""Privacy mechanisms: secure buffers, the RAM store, crypto and OS checks (P1-P3, P10)."""
