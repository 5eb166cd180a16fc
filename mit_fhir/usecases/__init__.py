"""Use cases: what the service does, on a store and a catalogue; no Flask here."""
