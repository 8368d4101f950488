import { authError, badRequest } from './api-error.js';
import type { EmulatorContext } from './http-context.js';
import type { DropboxModel } from './model.js';

/** The account behind `Authorization: Bearer <token>`, or the 400/401 Dropbox would answer. */
export function authenticate(c: EmulatorContext, model: DropboxModel, route: string): string {
  const header = c.req.header('authorization');
  if (!header) {
    throw badRequest(route, 'Must provide HTTP header "Authorization" or URL parameter "authorization".');
  }
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  if (!match) throw authError('invalid_access_token');
  const check = model.authenticate(match[1]!);
  if (!check.ok) throw authError(check.reason);
  return check.accountId;
}
