// The express app: the request log and per-IP limits first, routes per API family, then Matrix errors for everything else.
import express, { type Express, type RequestHandler } from 'express';
import { SERVED_BY, SERVED_BY_HEADER } from '../federation/homeserver-checks.js';
import { errorHandler, unrecognizedRoute } from './errors.js';
import { requestLog } from './request-log.js';
import { addressedTenant, requireTenant } from './request-tenant.js';
import { routeFamily } from './route-family.js';
import { adminRouter } from './routes/admin.js';
import { clientMediaApi } from './routes/client.js';
import { federationRouter } from './routes/federation.js';
import type { AppServices } from './services.js';

export function createApp(services: AppServices): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('trust proxy', services.config.trustProxy);
  // Lets `media-repo doctor` tell this service from the homeserver behind the same reverse proxy.
  app.use((_req, res, next) => {
    res.setHeader(SERVED_BY_HEADER, SERVED_BY);
    next();
  });

  const accessLog = services.config.accessLog.enabled ? services.log.child({ logger: 'access' }) : undefined;
  app.use(requestLog(services.tenants, services.httpObserver, accessLog));
  app.use(perIpLimits(services));

  app.get('/healthz', async (_req, res, next) => {
    try {
      await services.db.knex.raw('SELECT 1');
      res.json({ status: 'ok' });
    } catch (error) {
      next(error);
    }
  });

  // Every route below serves one hosted homeserver, decided by one rule (./request-tenant).
  app.use(requireTenant(services.tenants));
  app.use(federationRouter(services));
  app.use(clientMediaApi(services));
  app.use(adminRouter(services));
  app.use(unrecognizedRoute);
  app.use(errorHandler(services.log, services.outages));
  return app;
}

/** Requests per client IP (trustProxy decides what req.ip is), and the bandwidth share of media responses. */
function perIpLimits({ limits, tenants }: Pick<AppServices, 'limits' | 'tenants'>): RequestHandler {
  return (req, res, next) => {
    const tenant = addressedTenant(tenants, req);
    const family = routeFamily(req);
    const ip = req.ip ?? '';
    try {
      limits.checkIp(tenant, family, ip);
    } catch (error) {
      // A refused upload's body is not read: the connection cannot be reused.
      if (family === 'upload') res.setHeader('Connection', 'close');
      throw error;
    }
    if (family === 'download' || family === 'thumbnail') res.locals.throttle = limits.bandwidth(tenant, ip);
    next();
  };
}
