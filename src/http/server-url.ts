import { isIPv6 } from 'node:net';

/**
 * The URL at which this machine reaches a server listening on `host`:`port`, for the log and for
 * the demo's own webhooks. An IPv6 address goes in brackets (`http://::1:8080` is no URL), and a
 * wildcard (`0.0.0.0`, `::`), which is where a server listens but not where a client connects,
 * becomes the loopback address of its family.
 */
export function serverUrl(host: string, port: number): string {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const reachable = bare === '0.0.0.0' ? '127.0.0.1' : bare === '::' ? '::1' : bare;
  return `http://${isIPv6(reachable) ? `[${reachable}]` : reachable}:${port}`;
}
