"""Printing a result: rendered at 10x15 cm, sent from memory over IPP, nothing spooled to disk."""
