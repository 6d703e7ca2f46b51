"""Local HTTP servers that speak the parts of the platforms' APIs we use, backed by a simulated market.

The connectors reach them only through configuration (a base URL and a token), so the demo and the
tests run exactly the code that runs against real accounts.
"""
