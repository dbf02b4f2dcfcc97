"""Provisioning: one idempotent run turns a fresh JetPack install into a hardened booth."""
