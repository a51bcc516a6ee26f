// The admin API (matrix-media-repo's paths under /_matrix/media/unstable/admin): quarantine, purge,
// and (from ./admin-reports) usage, tasks and the audit log.
import { Router, type Request, type RequestHandler } from 'express';
import { unrecognized } from '../../matrix/errors.js';
import type { MediaSelector } from '../../media/media-selection.js';
import { AdminAuthenticator } from '../admin-auth.js';
import { integerParam, requiredInteger, serverNameParam, userIdParam } from '../admin-params.js';
import { ClientAuthenticator } from '../auth.js';
import { booleanParam, mediaPath } from '../media-params.js';
import { methodNotAllowed } from './common.js';
import { ADMIN, adminReportRoutes, type AdminServices, type Authenticate } from './admin-reports.js';


const roomsUnknown = () => unrecognized('This media repository does not know which media belongs to which room', 400);

export function adminRouter(services: AdminServices): Router {
  const clients = new ClientAuthenticator(services.config.auth, services.log);
  const auth = new AdminAuthenticator(clients, services.admin.auth, services.log);
  const authenticate: Authenticate = async (req) => {
    const scope = await auth.authenticate(req);
    // Which homeserver fetched which remote media is written in batches: this request must see all of it.
    await services.admin.accessTimes.flush();
    return scope;
  };
  const refuseRooms: RequestHandler = async (req) => {
    await authenticate(req);
    throw roomsUnknown();
  };
  const router = Router();
  const post = (path: string, handler: RequestHandler) => router.route(`${ADMIN}${path}`).post(handler).all(methodNotAllowed);

  for (const verb of ['quarantine', 'unquarantine'] as const) {
    const act = (selectorOf: (req: Request) => MediaSelector): RequestHandler => async (req, res) => {
      const scope = await authenticate(req);
      const selector = selectorOf(req);
      const count = await services.admin.quarantine[verb](selector, scope);
      res.json(verb === 'quarantine' ? { num_quarantined: count } : { num_unquarantined: count });
    };
    post(`/${verb}/room/:roomId`, refuseRooms);
    post(`/${verb}/user/:userId`, act((req) => ({ kind: 'user', userId: userIdParam(req.params.userId) })));
    post(`/${verb}/server/:serverName`, act((req) => ({ kind: 'server', serverName: serverNameParam(req.params.serverName) })));
    post(`/${verb}/:serverName/:mediaId`, act((req) => ({ kind: 'media', ...mediaPath(req) })));
  }

  const purge = (selectorOf: (req: Request) => MediaSelector): RequestHandler => async (req, res) => {
    const scope = await authenticate(req);
    const selector = selectorOf(req);
    const options = { dryRun: booleanParam(req, 'dry_run', false), background: booleanParam(req, 'background', false) };
    const answer = await services.admin.purges.request(selector, scope, options);
    // matrix-media-repo's purge/remote answers total_removed: kept for its scripts.
    res.json(selector.kind === 'remote' && 'purged' in answer ? { ...answer, total_removed: answer.count } : answer);
  };
  post('/purge/remote', purge((req) => ({ kind: 'remote', beforeTs: requiredInteger(req, 'before_ts') })));
  post('/purge/old', purge((req) => ({ kind: 'old', beforeTs: integerParam(req, 'before_ts') ?? Date.now(), includeLocal: booleanParam(req, 'include_local', false) })));
  post('/purge/quarantined', purge(() => ({ kind: 'quarantined' })));
  post('/purge/room/:roomId', refuseRooms);
  post('/purge/user/:userId', purge((req) => ({ kind: 'user', userId: userIdParam(req.params.userId), beforeTs: integerParam(req, 'before_ts') })));
  post('/purge/server/:serverName', purge((req) => ({ kind: 'server', serverName: serverNameParam(req.params.serverName), beforeTs: integerParam(req, 'before_ts') })));
  post('/purge/:serverName/:mediaId', purge((req) => ({ kind: 'media', ...mediaPath(req) })));

  router.use(adminReportRoutes(services, authenticate));
  return router;
}
