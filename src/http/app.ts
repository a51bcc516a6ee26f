// The express app: routes per API family, then Matrix errors for everything else.
import express, { type Express } from 'express';
import { SERVED_BY, SERVED_BY_HEADER } from '../federation/homeserver-checks.js';
import { errorHandler, unrecognizedRoute } from './errors.js';
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

  app.get('/healthz', async (_req, res, next) => {
    try {
      await services.db.knex.raw('SELECT 1');
      res.json({ status: 'ok' });
    } catch (error) {
      next(error);
    }
  });

  app.use(federationRouter(services));
  app.use(clientMediaApi(services));
  app.use(unrecognizedRoute);
  app.use(errorHandler(services.log));
  return app;
}
