"""Real FHIR R4 servers (Medplum in memory, SEKMET on SQLite) started on loopback by the tests."""
