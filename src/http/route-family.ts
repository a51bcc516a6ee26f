// The endpoint family of a request: the unit of rate limits, and the one route label of metrics and the
// access log (a handful of values, never a media or user ID).
import type { Request } from 'express';

export type RouteFamily = 'upload' | 'download' | 'thumbnail' | 'config' | 'federation' | 'health' | 'other';

const FAMILIES: Array<[RegExp, RouteFamily]> = [
  [/^\/_matrix\/federation\//, 'federation'],
  [/^\/_matrix\/media\/[^/]+\/(upload|create)(\/|$)/, 'upload'],
  [/^\/_matrix\/(client\/v1|media\/[^/]+)\/(media\/)?download\//, 'download'],
  [/^\/_matrix\/(client\/v1|media\/[^/]+)\/(media\/)?thumbnail\//, 'thumbnail'],
  [/^\/_matrix\/(client\/[^/]+(\/[^/]+)?\/media|media\/[^/]+)\/(config|usage|preview_url)$/, 'config'],
  [/^\/healthz$/, 'health'],
];

const cache = new WeakMap<Request, RouteFamily>();

export function routeFamily(req: Request): RouteFamily {
  let family = cache.get(req);
  if (family === undefined) {
    const path = req.originalUrl.split('?', 1)[0]!;
    family = FAMILIES.find(([pattern]) => pattern.test(path))?.[1] ?? 'other';
    cache.set(req, family);
  }
  return family;
}
