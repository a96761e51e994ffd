"""gateway-cli: a terminal client for the agent gateway (REPL and print mode).

It talks to a gateway over its public REST + WebSocket API only; it imports nothing
from the server.
"""

__version__ = "0.1.0"
