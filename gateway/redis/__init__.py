"""Redis: REDIS_URL's forms, named clients per job, batching, keys, the node holding a key,
Sentinel's majority."""
