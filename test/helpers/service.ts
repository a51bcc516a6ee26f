// Starts the real service on loopback with a fresh test database and a config built like a YAML file.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { buildConfig } from '../../src/config/config.js';
import { createLogger } from '../../src/log.js';
import { startService, type RunningService } from '../../src/service.js';
import { openTestDatabase } from './database.js';

export async function startTestService(raw: Record<string, unknown> = {}): Promise<RunningService> {
  const dir = mkdtempSync(join(tmpdir(), 'media-repo-'));
  const config = buildConfig({
    listen: { host: '127.0.0.1', port: 0 },
    logLevel: 'silent',
    dataDir: dir,
    masterKey: randomBytes(32).toString('hex'),
    ...raw,
  }, join(dir, 'config.yaml'));
  return startService(config, createLogger(config.logLevel), await openTestDatabase());
}
