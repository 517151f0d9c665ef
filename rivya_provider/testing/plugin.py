"""pytest plugin: fixtures that start the local Rivya emulator (filled in by the emulator work)."""
