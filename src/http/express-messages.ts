// express re-parents every request and response onto its app's prototypes (Object.setPrototypeOf), and
// V8 then takes slow paths for every later property access of node's HTTP code on them: 3-4× the CPU per
// small response. node builds them from these constructors instead, already of the app's prototypes, so
// that express's setPrototypeOf has nothing left to change.
import { IncomingMessage, ServerResponse, type ServerOptions } from 'node:http';
import type { Express } from 'express';

export interface ExpressMessages {
  /** For node:http's createServer. */
  options: Pick<ServerOptions, 'IncomingMessage' | 'ServerResponse'>;
  /** From now on requests and responses are made of `app`'s prototypes. */
  adopt(app: Express): void;
}

export function expressMessages(): ExpressMessages {
  // Plain functions, whose `prototype` can be replaced. node's own are plain functions too, so they can
  // initialise `this` (Reflect.construct with another new.target would work for classes, but measured slower than express's way).
  function Request(this: IncomingMessage, ...args: ConstructorParameters<typeof IncomingMessage>): void {
    IncomingMessage.call(this, ...args);
  }
  function Response(this: ServerResponse, ...args: ConstructorParameters<typeof ServerResponse>): void {
    ServerResponse.call(this, ...args);
  }
  Request.prototype = IncomingMessage.prototype;
  Response.prototype = ServerResponse.prototype;
  return {
    options: {
      IncomingMessage: Request as unknown as typeof IncomingMessage,
      ServerResponse: Response as unknown as typeof ServerResponse,
    },
    adopt(app) {
      Request.prototype = app.request;
      Response.prototype = app.response;
    },
  };
}
