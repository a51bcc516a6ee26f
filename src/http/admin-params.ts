// Query and path values of the admin API, checked before anything is read or changed.
import type { Request } from 'express';
import { invalidParam, missingParam } from '../matrix/errors.js';
import { isValidServerName } from '../matrix/server-name.js';
import type { UserStatsOrder } from '../media/usage.js';

function single(req: Request, name: string): string | undefined {
  const value: unknown = req.query[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw invalidParam(`"${name}" must be given once`);
  return value;
}

export function integerParam(req: Request, name: string): number | undefined {
  const value = single(req, name);
  if (value === undefined) return undefined;
  if (!/^\d{1,15}$/.test(value)) throw invalidParam(`"${name}" must be a non-negative integer`);
  return Number(value);
}

export function requiredInteger(req: Request, name: string): number {
  const value = integerParam(req, name);
  if (value === undefined) throw missingParam(`"${name}" is required`);
  return value;
}

export function pageParams(req: Request, defaultLimit = 100): { from: number; limit: number } {
  const limit = integerParam(req, 'limit') ?? defaultLimit;
  if (limit < 1 || limit > 1000) throw invalidParam('"limit" must be between 1 and 1000');
  return { from: integerParam(req, 'from') ?? 0, limit };
}

export function userIdParam(value: unknown): string {
  const match = typeof value !== 'string' ? null : /^@[^:]+:(.+)$/.exec(value);
  if (!match || !isValidServerName(match[1]!)) throw invalidParam('Invalid user ID');
  return value as string;
}

export function serverNameParam(value: unknown): string {
  if (typeof value !== 'string' || !isValidServerName(value)) throw invalidParam('Invalid server name');
  return value;
}

/** All values of a repeatable parameter (?user_id=a&user_id=b). */
export function listParam(req: Request, name: string): string[] {
  const value: unknown = req.query[name];
  if (value === undefined) return [];
  const values = Array.isArray(value) ? value : [value];
  if (!values.every((v): v is string => typeof v === 'string')) throw invalidParam(`"${name}" must be strings`);
  return values;
}

export function orderParams(req: Request): { by: UserStatsOrder; dir: 'f' | 'b' } {
  const by = single(req, 'order_by') ?? 'user_id';
  if (by !== 'user_id' && by !== 'media_count' && by !== 'media_length') throw invalidParam('"order_by" must be user_id, media_count or media_length');
  const dir = single(req, 'dir') ?? 'f';
  if (dir !== 'f' && dir !== 'b') throw invalidParam('"dir" must be f or b');
  return { by, dir };
}
