"""A faithful emulator of the VIPeX HTTP API, with fault injection.

It is the demo's backend and every test's server: :class:`EmulatorApp` is the
WSGI application over an :class:`EmulatorState` (all 17 documented actions,
quirks included), :class:`Faults` switches HTTP-level trouble on and off while
it runs, and :func:`serve_in_thread` / :func:`serve_forever` run it. The
rules chosen where the vendor document is silent are written down in
:mod:`vipexsync.emulator.actions` (API semantics), :mod:`.app` (request
handling), :mod:`.formats` (the XML shape) and :mod:`.faults`.
"""

from vipexsync.emulator.app import EmulatorApp
from vipexsync.emulator.faults import Faults
from vipexsync.emulator.server import RunningEmulator, serve_forever, serve_in_thread
from vipexsync.emulator.state import EmulatorState, example_state

__all__ = [
    "EmulatorApp",
    "EmulatorState",
    "Faults",
    "RunningEmulator",
    "example_state",
    "serve_forever",
    "serve_in_thread",
]
