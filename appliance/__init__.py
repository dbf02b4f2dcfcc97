"""Ephemera: the photo booth that forgets. Service, kiosk and pipeline for the appliance."""

__version__ = "0.1.0"
