"""Clusters dnet did not build: read what runs into the inventory (import) and adopt it."""
