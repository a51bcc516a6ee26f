// The express app: routes per API family, then Matrix errors for everything else.
import express, { type Express } from 'express';
import type { AppContext } from '../context.js';
import { errorHandler, unrecognizedRoute } from './errors.js';
import { clientMediaApi } from './routes/client.js';
import { federationRouter } from './routes/federation.js';

export function createApp(ctx: AppContext): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('trust proxy', ctx.config.trustProxy);

  app.get('/healthz', async (_req, res, next) => {
    try {
      await ctx.db.knex.raw('SELECT 1');
      res.json({ status: 'ok' });
    } catch (error) {
      next(error);
    }
  });

  app.use(federationRouter(ctx));
  app.use(clientMediaApi(ctx));
  app.use(unrecognizedRoute);
  app.use(errorHandler(ctx.log));
  return app;
}
