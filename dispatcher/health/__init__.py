"""Provider health: sliding windows, circuit breakers with leased half-open probes, and rate
limits, laid out like `limits`' storage.

    base.py       the `HealthStore` protocol, the plain data, the one "available" rule
    rules.py      the Python copy of each rule the stores share with the Lua preludes
    redis.py      `RedisHealth`: the store shared by every replica (dispatcher/lua/*.lua)
    memory.py     `MemoryHealth`: the same store in process, while Redis is away
    resilient.py  `ResilientHealth`: Redis, else memory; and the local fast trip on top
    view.py       what a strategy sees of each provider
"""
