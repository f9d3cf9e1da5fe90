/**
 * Where Redis is, from `REDIS_URL`: one server (`redis://`, `rediss://`), or a Redis Cluster
 * (`redis+cluster://[user:password@]host:port,host:port,…`, `rediss+cluster://` for TLS) given by
 * a few of its nodes; the client learns the others and the slot map from them.
 */
export type RedisTarget =
  | { kind: 'single'; url: string }
  | { kind: 'cluster'; nodes: { host: string; port: number }[]; username?: string; password?: string; tls: boolean };

const CLUSTER_SCHEME = /^(rediss?)\+cluster:\/\/(.*)$/i;

/** Parses `REDIS_URL`; throws a readable Error (no password in it) when it is not one. */
export function parseRedisUrl(redisUrl: string): RedisTarget {
  const cluster = CLUSTER_SCHEME.exec(redisUrl.trim());
  if (!cluster) {
    const protocol = (() => {
      try {
        return new URL(redisUrl).protocol;
      } catch {
        return undefined;
      }
    })();
    if (protocol !== 'redis:' && protocol !== 'rediss:')
      throw new Error('must be a URL starting with redis://, rediss:// or redis+cluster://');
    return { kind: 'single', url: redisUrl };
  }
  const [, scheme = '', target = ''] = cluster;
  // Credentials end at the LAST '@' of the whole target: a password may hold '#', '/' or '?' unencoded.
  const at = target.lastIndexOf('@');
  const credentials = at === -1 ? undefined : target.slice(0, at);
  const afterCredentials = at === -1 ? target : target.slice(at + 1);
  const [hosts = '', ...trailing] = afterCredentials.split(/(?=[/?#])/);
  // A cluster has no databases and takes no options in the URL: refuse what would be ignored silently.
  if (trailing.join('').replace(/^\/$/, '') !== '')
    throw new Error('must not carry a path, query or fragment after the nodes on Redis Cluster (a cluster has only database 0)');
  const nodes = hosts.split(',').map((item, index) => {
    const [, host, portText] = /^(\[[^\]]+\]|[^:@/?#[\]]+)(?::(\d+))?$/.exec(item.trim()) ?? [];
    const port = Number(portText ?? 6379);
    // The node is named by its position, not echoed: a mistyped URL may have a password there.
    if (host === undefined || port < 1 || port > 65535)
      throw new Error(`must list cluster nodes as host:port, comma separated (node ${index + 1} is not one)`);
    return { host: host.replace(/^\[|\]$/g, ''), port };
  });
  if (nodes.length === 0) throw new Error('must name at least one cluster node (redis+cluster://host:port,host:port)');
  const [username, password] = credentials === undefined ? [] : splitCredentials(credentials);
  return {
    kind: 'cluster',
    nodes,
    username: username || undefined,
    password: password || undefined,
    tls: scheme.toLowerCase() === 'rediss',
  };
}

function splitCredentials(credentials: string): [string, string | undefined] {
  const colon = credentials.indexOf(':');
  if (colon === -1) return [decodeURIComponent(credentials), undefined];
  return [decodeURIComponent(credentials.slice(0, colon)), decodeURIComponent(credentials.slice(colon + 1))];
}

/** Whether `REDIS_URL` names a Redis Cluster. */
export function isClusterUrl(redisUrl: string): boolean {
  return CLUSTER_SCHEME.test(redisUrl.trim());
}

/** `host:port` of Redis (each node's, comma separated, for a cluster), without user or password: safe to print. */
export function redisEndpoint(redisUrl: string): string {
  try {
    const target = parseRedisUrl(redisUrl);
    if (target.kind === 'cluster')
      return target.nodes.map((node) => `${node.host.includes(':') ? `[${node.host}]` : node.host}:${node.port}`).join(',');
    const parsed = new URL(target.url);
    return `${parsed.hostname || 'localhost'}:${parsed.port || 6379}`;
  } catch {
    return '(unparseable URL)';
  }
}

/**
 * Whether every key under `prefix` hashes to one cluster slot: Redis hashes only the part between
 * the first `{` and the next `}` when it is not empty (https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/#hash-tags).
 * BullMQ's scripts touch several keys of a queue at once, which a cluster allows within one slot only
 * (https://docs.bullmq.io/bull/patterns/redis-cluster).
 */
export function hasHashTag(prefix: string): boolean {
  const open = prefix.indexOf('{');
  if (open === -1) return false;
  const close = prefix.indexOf('}', open + 1);
  return close > open + 1;
}
