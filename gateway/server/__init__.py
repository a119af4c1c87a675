"""Serving: the listening socket, client connections and their bounds, worker processes, the event
loop and garbage collection."""
