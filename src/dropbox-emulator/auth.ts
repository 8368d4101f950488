import { authError, badRequest } from './api-error.js';
import type { EmulatorContext, EmulatorDeps } from './http-context.js';

/**
 * The account behind `Authorization: Bearer <token>`, or the 400/401 Dropbox would answer. A 401
 * for a token the emulator knows (expired, revoked) is counted for its account (`stats.refused`).
 */
export function authenticate(c: EmulatorContext, deps: Pick<EmulatorDeps, 'model' | 'stats'>, route: string): string {
  const header = c.req.header('authorization');
  if (!header) {
    throw badRequest(route, 'Must provide HTTP header "Authorization" or URL parameter "authorization".');
  }
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  if (!match) throw authError('invalid_access_token');
  const check = deps.model.authenticate(match[1]!);
  if (!check.ok) {
    if (check.accountId !== undefined) deps.stats.recordRefusal(check.accountId, route);
    throw authError(check.reason);
  }
  return check.accountId;
}
