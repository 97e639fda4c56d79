"""The consumer service: the firer (and later the router) roles, one process, one asyncio loop."""
