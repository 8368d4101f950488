import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';

const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * Whether an `Authorization` header carries `Bearer <ADMIN_TOKEN>`. Compared as digests, in
 * constant time, so neither the length nor a prefix of the token leaks through the answer's timing.
 */
export function adminBearerCheck(adminToken: string): (authorization: string | undefined) => boolean {
  const expected = digest(adminToken);
  return (authorization) => {
    // The auth scheme is case-insensitive (RFC 7235 §2.1), the token is not.
    const match = /^Bearer +(.+)$/i.exec(authorization ?? '');
    return Boolean(match && timingSafeEqual(digest(match[1]!), expected));
  };
}

/** `Authorization: Bearer <ADMIN_TOKEN>` or 401. */
export function requireAdmin(adminToken: string): MiddlewareHandler {
  const isAdmin = adminBearerCheck(adminToken);
  return async (c, next) => {
    if (!isAdmin(c.req.header('Authorization'))) {
      c.header('WWW-Authenticate', 'Bearer');
      return c.json({ error: 'unauthorized', message: 'send Authorization: Bearer <ADMIN_TOKEN>' }, 401);
    }
    await next();
  };
}
