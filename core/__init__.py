"""The bottom floor: the one schema, the box conventions, offline defaults and shard I/O.

Imports nothing of the project's; every other package may import it.
"""

__version__ = "0.1.0"
