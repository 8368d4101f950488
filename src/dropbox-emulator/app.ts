import { Hono } from 'hono';
import { registerDownloadRoute } from './download-route.js';
import { toApiError } from './error-mapping.js';
import type { EmulatorDeps, EmulatorEnv } from './http-context.js';
import { registerAuthorizeRoute, registerOAuthRoute } from './oauth-route.js';
import { registerRpcRoutes } from './rpc-routes.js';

/** api.dropboxapi.com, content.dropboxapi.com and notify.dropboxapi.com routes on one app (plus www.dropbox.com/oauth2/authorize). */
export function createEmulatorApp(deps: EmulatorDeps): Hono<EmulatorEnv> {
  const app = new Hono<EmulatorEnv>();
  registerOAuthRoute(app, deps);
  registerAuthorizeRoute(app, deps);
  registerRpcRoutes(app, deps);
  registerDownloadRoute(app, deps);
  app.notFound((c) => c.text(`Unknown API function: ${c.req.method} ${c.req.path}`, 404));
  app.onError((error, c) => {
    const route = c.req.path.replace(/^\/2\//, '');
    const apiError = toApiError(error, route);
    if (apiError) return apiError.toResponse();
    console.error('dropbox emulator: unexpected error', error);
    return c.text('Internal Server Error', 500);
  });
  return app;
}
