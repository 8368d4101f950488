import { Cluster, Redis, type ClusterNode } from 'ioredis';
import { loadScripts, type RedisClient } from './scripts.js';

export interface RedisConnectOptions {
  /** Deadline of every command (it also bounds the time a command waits for a reconnect). */
  commandTimeoutMs?: number;
}

/** The fail-fast settings of every node connection (single node, or each node of a cluster). */
function failFast(options: RedisConnectOptions) {
  return {
    maxRetriesPerRequest: 1,
    commandTimeout: options.commandTimeoutMs ?? 5_000,
    connectTimeout: 5_000,
    reconnectOnError: reconnectAfterFailover,
  };
}

/**
 * After a failover behind one address (a DNS name, a virtual IP, a managed primary endpoint) the
 * old primary is a replica that keeps its clients connected, and answers every write with READONLY.
 * Reconnecting reaches the new primary; without it every write failed until the process restarted.
 * The command that got READONLY was not run, and fails (a webhook answers 503, Dropbox retries).
 */
export function reconnectAfterFailover(error: Error): 1 | false {
  // Redis 7 answers a script's write on a replica with READONLY too; Redis 6 wraps it in
  // "ERR Error running script ... -READONLY ...".
  return error.message.includes('READONLY') ? 1 : false;
}

/**
 * The engine's Redis connection: fail fast instead of hanging. With the offline queue off a command
 * issued while Redis is down rejects at once (the caller backs off or answers 503), every command has
 * a deadline, and ioredis keeps reconnecting with backoff in the background.
 */
export function connectRedis(url: string, options: RedisConnectOptions = {}): Redis {
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    // Commands issued in the same tick (many accounts' steps at once) go out in one write: the
    // storm benchmark spent 17.5% of its CPU on per-command socket writes.
    enableAutoPipelining: true,
    ...failFast(options),
    retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 2_000),
  });
  return redis;
}

/** Redis could not be reached at start: where (never the password) and what it answered. */
export class RedisConnectError extends Error {
  constructor(readonly address: string, readonly reason: string) {
    super(`could not connect to Redis at ${address}: ${reason}`);
    this.name = 'RedisConnectError';
  }
}

/** `host:port` of a redis:// or rediss:// URL, for a message (its credentials left out). */
function addressOf(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname}:${parsed.port || '6379'}`;
  } catch {
    return 'the configured address';
  }
}

/** Connects and waits until the client is ready (the offline queue is off, so this must come first). */
export async function openRedis(url: string, options: RedisConnectOptions = {}): Promise<Redis> {
  const redis = connectRedis(url, options);
  // Without a listener ioredis prints every reconnect error; the owner logs them instead. The last
  // one says why a first connect failed, where connect() itself only says "Connection is closed".
  let lastError: Error | undefined;
  redis.on('error', (error: Error) => { lastError = error; });
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    throw new RedisConnectError(addressOf(url), (lastError ?? (error as Error)).message);
  }
  // Not fatal: a server that refuses SCRIPT LOAD (an ACL) still runs each script by EVAL once.
  await loadScripts(redis).catch(() => {});
  // A restarted server comes back with an empty script cache.
  redis.on('ready', () => void loadScripts(redis).catch(() => {}));
  return redis;
}

/**
 * Parses `REDIS_CLUSTER_NODES`: comma-separated `host:port` seed nodes (any subset of the cluster;
 * the client discovers the rest with CLUSTER SLOTS). `[::1]:7000` for IPv6.
 */
export function parseClusterNodes(value: string): { host: string; port: number }[] {
  const nodes = value.split(',').map((s) => s.trim()).filter(Boolean).map((item) => {
    const match = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(item);
    const port = match ? Number(match[3]) : NaN;
    if (!match || port < 1 || port > 65535) throw new Error(`"${item}" is not host:port`);
    return { host: (match[1] ?? match[2])!, port };
  });
  if (nodes.length === 0) throw new Error('no nodes given');
  return nodes;
}

/**
 * A Redis Cluster client with the same fail-fast behaviour as `connectRedis`: the cluster-level
 * offline queue is off (a command for a slot whose node is unreachable rejects at once), every node
 * connection has the same command deadline, and the client keeps rediscovering the cluster in the
 * background. The scripts route by their first key; every key a script touches carries the
 * account's hash tag `{<accountId>}`, so each script lands on the one node owning that slot.
 * Pub/sub (the wake channel) goes through one node; Redis Cluster broadcasts PUBLISH to all nodes.
 *
 * Note: ioredis always enables the per-node offline queue inside a cluster (it needs it during
 * slot discovery), so the per-node `commandTimeout` is what bounds a command to a node that is
 * connecting; the replay hazard of a timed-out queued command applies as on a single node.
 */
export function connectRedisCluster(nodes: ClusterNode[], options: RedisConnectOptions = {}): Cluster {
  const cluster = new Cluster(nodes, {
    lazyConnect: true,
    enableOfflineQueue: false,
    enableReadyCheck: true,
    clusterRetryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 2_000),
    slotsRefreshTimeout: 2_000,
    redisOptions: failFast(options),
  });
  return cluster;
}

/** Connects to the cluster and waits until it is ready (slots known, cluster_state ok). */
export async function openRedisCluster(nodes: ClusterNode[], options: RedisConnectOptions = {}): Promise<Cluster> {
  const cluster = connectRedisCluster(nodes, options);
  cluster.on('error', () => {});
  try {
    await cluster.connect();
    // Each master caches its own scripts; a node that joins or restarts later is covered by the
    // EVAL fallback (runScript), as is a refused SCRIPT LOAD.
    await loadScriptsOn(cluster).catch(() => {});
  } catch (error) {
    cluster.disconnect();
    throw error;
  }
  return cluster;
}

/**
 * Puts the engine's scripts in the cache of a single node, or of every master of a cluster (each
 * caches its own): the first call of each is then one round trip.
 */
export async function loadScriptsOn(client: RedisClient): Promise<void> {
  await Promise.all((client instanceof Cluster ? client.nodes('master') : [client]).map((node) => loadScripts(node)));
}
