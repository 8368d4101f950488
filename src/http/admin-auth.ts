import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';

const digest = (value: string) => createHash('sha256').update(value).digest();

/** `Authorization: Bearer <ADMIN_TOKEN>` or 401. Compared as digests, in constant time. */
export function requireAdmin(adminToken: string): MiddlewareHandler {
  const expected = digest(adminToken);
  return async (c, next) => {
    const header = c.req.header('Authorization') ?? '';
    // The auth scheme is case-insensitive (RFC 7235 §2.1), the token is not.
    const match = /^Bearer +(.+)$/i.exec(header);
    if (!match || !timingSafeEqual(digest(match[1]!), expected)) {
      c.header('WWW-Authenticate', 'Bearer');
      return c.json({ error: 'unauthorized', message: 'send Authorization: Bearer <ADMIN_TOKEN>' }, 401);
    }
    await next();
  };
}
