import { Hono } from 'hono';
import type { Registry } from 'prom-client';

/**
 * `GET /metrics`: the Prometheus text format. Mounted behind the admin bearer token (Prometheus
 * scrapes with `authorization: { credentials: <ADMIN_TOKEN> }`): the metrics carry no account ids or
 * secrets, but they do describe the deployment's traffic, and the account API is guarded the same way.
 */
export function metricsRoutes(registry: Registry): Hono {
  const routes = new Hono();
  routes.get('/', async (c) => {
    const body = await registry.metrics();
    return c.body(body, 200, { 'Content-Type': registry.contentType, 'Cache-Control': 'no-store' });
  });
  return routes;
}
