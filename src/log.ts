// Structured JSON logs (pino). Credentials are redacted at the logger so no call site can leak them.
import { pino, type Logger } from 'pino';

export type { Logger };

export const REDACTED_PATHS = [
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
  'accessToken',
  'access_token',
  'seed',
  'privateKey',
  'masterKey',
];

export function createLogger(level: string, destination?: { write(line: string): unknown }): Logger {
  return pino({ level, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } }, destination as pino.DestinationStream | undefined);
}
