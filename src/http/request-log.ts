// What happens to each request, told once it is over: to the metrics (HttpObserver) and as one access
// log line. Neither sees the URL: no token, signature or media ID can leak, and labels stay bounded.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Request, RequestHandler } from 'express';
import type { Tenants } from '../config/tenants.js';
import { addressedTenant } from './request-tenant.js';
import type { Logger } from '../log.js';
import { routeFamily, type RouteFamily } from './route-family.js';

export interface FinishedRequest {
  method: string;
  family: RouteFamily;
  /** A configured homeserver name, or "-": never free text from the request. */
  homeserver: string;
  status: number;
  durationSeconds: number;
  /** On the wire, headers included. */
  bytesIn: number;
  bytesOut: number;
  /** The client went away before the response was complete. */
  aborted: boolean;
}

/** The metrics side; built by the composition root. */
export interface HttpObserver {
  requestFinished(request: FinishedRequest): void;
}

interface Noted { homeserver?: string; remoteServer?: string }
const noted = new WeakMap<IncomingMessage, Noted>();
// Socket byte counts when the connection's previous request ended: a request's bytes are those since.
// (At the first middleware a small body has often been read along with the headers already.)
const socketMarks = new WeakMap<Socket, { read: number; written: number }>();

/** The hosted homeserver a request turned out to be for (authentication knows it best); kept only for an observed request. */
export function noteHomeserver(req: Request, homeserver: string): void {
  const info = noted.get(req);
  if (info) info.homeserver = homeserver;
}

/** The authenticated origin of a federation request. */
export function noteRemoteServer(req: Request, remoteServer: string): void {
  const info = noted.get(req);
  if (info) info.remoteServer = remoteServer;
}

export function requestLog(tenants: Tenants, observer: HttpObserver | undefined, accessLog: Logger | undefined): RequestHandler {
  return (req, res, next) => {
    if (!observer && !accessLog) {
      next();
      return;
    }
    const started = process.hrtime.bigint();
    const socket = req.socket;
    const info: Noted = {};
    noted.set(req, info);
    res.once('close', () => {
      const mark = socketMarks.get(socket) ?? { read: 0, written: 0 };
      const now = { read: socket.bytesRead, written: socket.bytesWritten };
      socketMarks.set(socket, now);
      const finished: FinishedRequest = {
        method: req.method,
        family: routeFamily(req),
        homeserver: info.homeserver ?? addressedTenant(tenants, req)?.name ?? '-',
        status: res.statusCode,
        durationSeconds: Number(process.hrtime.bigint() - started) / 1e9,
        bytesIn: now.read - mark.read,
        bytesOut: now.written - mark.written,
        aborted: !res.writableFinished,
      };
      observer?.requestFinished(finished);
      accessLog?.info({
        method: finished.method,
        family: finished.family,
        homeserver: finished.homeserver,
        status: finished.status,
        bytesIn: finished.bytesIn,
        bytesOut: finished.bytesOut,
        durationMs: Math.round(finished.durationSeconds * 1e6) / 1e3,
        ip: req.ip,
        ...(info.remoteServer ? { remoteServer: info.remoteServer } : {}),
        ...(finished.aborted ? { aborted: true } : {}),
      }, 'request');
    });
    next();
  };
}
