"""The fault-scenario routing simulator: virtual time around the real router, strategies and Lua.

clock       VirtualTime: a heap of events keyed by virtual seconds, and send tasks that sleep
            on it; time advances only when every task is waiting
providers   VirtualProvider: answers scripted as functions of virtual time
scenarios   the fault scenarios (outage, brownout, flapping, 429 storm, ...)
engine      one run: arrivals, receive batches, Router.plan, delivery.attempt, batched
            RedisHealth.record, snapshot refresh, retries and shedding
metrics     what a run is judged by (shift, recovery, latency, waste, shedding)
series      what the plots draw (share per provider, breaker states, p99 per second)
runner      every scenario x strategy, each on a fresh Redis key prefix, in processes
report      the markdown table and the adaptive targets
plot        one PNG per scenario
"""
