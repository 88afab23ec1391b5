"""Tests of the emulator (emulator/): the harness itself, the rehearsal and the acceptance flow on it."""
