"""The dramatiq side: broker, actors, the sweeper and the worker processes' setup."""
