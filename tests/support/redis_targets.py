"""The Redis a test runs on: one `redis-server`, or a three-primary Redis Cluster.

tests/conftest.py parametrizes a test marked `redis_targets("single", "cluster")` over both
(its `redis_target` fixture); the helpers here open and empty either kind.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis as SyncRedis
from redis import RedisCluster as SyncRedisCluster
from redis.asyncio import Redis

from dispatcher.app import open_redis
from dispatcher.config import RedisSettings
from dispatcher.scripts import RedisClient

REDIS_TARGETS = ("single", "cluster")


@dataclass(frozen=True, slots=True)
class RedisTarget:
    url: str  # the server, or one node of the cluster (the client finds the others)
    cluster: bool

    def flush(self) -> None:
        """Empty every primary."""
        if self.cluster:
            with SyncRedisCluster.from_url(self.url) as client:
                client.flushall(target_nodes=SyncRedisCluster.PRIMARIES)
        else:
            with SyncRedis.from_url(self.url) as client:
                client.flushall()

    def client(self) -> RedisClient:
        """A plain `Redis`, or the app's own `RedisCluster` (`dispatcher.app.open_redis`)."""
        if self.cluster:
            return open_redis(RedisSettings(url=self.url, cluster=True))
        return Redis.from_url(self.url)
