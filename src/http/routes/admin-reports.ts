// The admin API's read-only side: usage (matrix-media-repo's and Synapse's shapes), a user's media,
// background tasks and the audit log. A homeserver admin sees only their homeserver.
import { Router, type Request, type RequestHandler } from 'express';
import { forbidden, notFound } from '../../matrix/errors.js';
import { serverOfUserId, type AdminScope } from '../../media/media-selection.js';
import { taskJson } from '../../media/admin-tasks.js';
import { listParam, orderParams, pageParams, serverNameParam, userIdParam } from '../admin-params.js';
import { methodNotAllowed } from './common.js';
import type { AppServices } from '../services.js';

export const ADMIN = '/_matrix/media/unstable/admin';
export type AdminServices = Pick<AppServices, 'config' | 'tenants' | 'log' | 'admin'>;
export type Authenticate = (req: Request) => Promise<AdminScope>;

export function adminReportRoutes(services: AdminServices, authenticate: Authenticate): Router {
  const router = Router();
  const get = (path: string, handler: RequestHandler) => router.route(`${ADMIN}${path}`).get(handler).all(methodNotAllowed);
  const { usage, tasks, audit } = services.admin;
  const hostedOnly = (serverName: string, scope: AdminScope) => {
    if (scope.homeserver !== null && serverName !== scope.homeserver) throw forbidden('You may only see the usage of the homeserver you administer');
    if (!services.tenants.byName(serverName)) throw notFound('This media repository does not host that homeserver');
  };

  get('/usage/:serverName', async (req, res) => {
    const scope = await authenticate(req);
    const serverName = serverNameParam(req.params.serverName);
    if (scope.homeserver !== null && services.tenants.byName(serverName) && serverName !== scope.homeserver) {
      throw forbidden('You may only see the usage of the homeserver you administer');
    }
    res.json(await usage.server(serverName, scope));
  });
  get('/usage/:serverName/users', async (req, res) => {
    const scope = await authenticate(req);
    const serverName = serverNameParam(req.params.serverName);
    hostedOnly(serverName, scope);
    res.json(await usage.users(serverName, listParam(req, 'user_id').map(userIdParam)));
  });
  get('/usage/:serverName/users-stats', async (req, res) => {
    const scope = await authenticate(req);
    const serverName = serverNameParam(req.params.serverName);
    hostedOnly(serverName, scope);
    res.json(await usage.userStats(serverName, pageParams(req), orderParams(req)));
  });
  get('/users/:userId/media', async (req, res) => {
    const scope = await authenticate(req);
    const userId = userIdParam(req.params.userId);
    hostedOnly(serverOfUserId(userId), scope);
    res.json(await usage.userMedia(userId, pageParams(req)));
  });

  get('/tasks/all', async (req, res) => {
    res.json((await tasks.list(await authenticate(req), false)).map(taskJson));
  });
  get('/tasks/unfinished', async (req, res) => {
    res.json((await tasks.list(await authenticate(req), true)).map(taskJson));
  });
  get('/tasks/:taskId', async (req, res) => {
    const scope = await authenticate(req);
    const id = /^\d{1,9}$/.test(String(req.params.taskId)) ? Number(req.params.taskId) : undefined;
    const task = id === undefined ? undefined : await tasks.get(id);
    // Another homeserver's task is as unknown as a missing one.
    if (!task || (scope.homeserver !== null && task.scope !== scope.homeserver)) throw notFound('No such task');
    res.json(taskJson(task));
  });

  get('/audit', async (req, res) => {
    const scope = await authenticate(req);
    const { from, limit } = pageParams(req);
    res.json(await audit.list(scope, { from: from === 0 ? undefined : from, limit }));
  });
  return router;
}
