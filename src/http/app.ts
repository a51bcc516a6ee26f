// The express app: routes per API family, then Matrix errors for everything else.
import express, { type Express } from 'express';
import { errorHandler, unrecognizedRoute } from './errors.js';
import { adminRouter } from './routes/admin.js';
import { clientMediaApi } from './routes/client.js';
import { federationRouter } from './routes/federation.js';
import type { AppServices } from './services.js';

export function createApp(services: AppServices): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('trust proxy', services.config.trustProxy);

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
  app.use(adminRouter(services));
  app.use(unrecognizedRoute);
  app.use(errorHandler(services.log));
  return app;
}
