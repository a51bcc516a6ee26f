// The express app: routes per API family, then Matrix errors for everything else.
import express, { type Express } from 'express';
import type { Config } from '../config/config.js';
import type { Tenants } from '../config/tenants.js';
import type { Database } from '../db/database.js';
import type { KeyLookup } from '../federation/inbound-auth.js';
import type { Logger } from '../log.js';
import type { LocalMedia } from '../media/local-media.js';
import type { MediaStore } from '../media/media-store.js';
import type { RemoteMedia } from '../media/remote-media.js';
import type { Thumbnails } from '../media/thumbnails.js';
import type { Uploads } from '../media/uploads.js';
import { errorHandler, unrecognizedRoute } from './errors.js';
import { clientMediaApi } from './routes/client.js';
import { federationRouter } from './routes/federation.js';

/** What the routes use; the composition root (service.ts) builds it. */
export interface AppServices {
  config: Config;
  log: Logger;
  db: Pick<Database, 'knex'>;
  tenants: Tenants;
  keyring: KeyLookup;
  media: MediaStore;
  localMedia: LocalMedia;
  uploads: Uploads;
  thumbnails: Thumbnails;
  remoteMedia: RemoteMedia;
}

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
  app.use(unrecognizedRoute);
  app.use(errorHandler(services.log));
  return app;
}
