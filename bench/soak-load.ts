// The soak's load: one wrk process per kind of request, each with a Lua script that walks a pool of media,
// so 200 keep-alive clients cost a few C processes and not the measuring process's event loop.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseWrk, WRK, type WrkResult } from './native-clients.js';

export interface SoakPools {
  tenant: string;
  token: string;
  /** Media IDs of files to download. */
  files: string[];
  /** Media IDs of images to thumbnail. */
  images: string[];
  /** The Authorization header for the federation download of each of `files`. */
  federationAuth(mediaId: string): string;
}

export type SoakKind = 'upload' | 'download' | 'thumbnail' | 'federation';
export const SOAK_KINDS: SoakKind[] = ['upload', 'download', 'thumbnail', 'federation'];

const lua = (value: string) => JSON.stringify(value); // ASCII only: a JSON string is a Lua string
const luaList = (values: string[]) => `{${values.map(lua).join(', ')}}`;

/** The Lua script of one kind: which request each client sends next. */
function script(kind: SoakKind, pools: SoakPools): string {
  const auth = `wrk.headers["Authorization"] = ${lua(`Bearer ${pools.token}`)}`;
  const walk = (list: string) => `local i = 0\nlocal function next_of(t) i = i % #t + 1; return t[i] end\nlocal ${list}`;
  switch (kind) {
    case 'download':
      return `${auth}\n${walk(`ids = ${luaList(pools.files)}`)}
request = function() return wrk.format("GET", "/_matrix/client/v1/media/download/${pools.tenant}/" .. next_of(ids)) end\n`;
    case 'federation': {
      const pairs = pools.files.map((id) => `{${lua(`/_matrix/federation/v1/media/download/${id}`)}, ${lua(pools.federationAuth(id))}}`);
      return `${walk(`reqs = {${pairs.join(',\n')}}`)}
request = function() local r = next_of(reqs); return wrk.format("GET", r[1], {Authorization = r[2]}) end\n`;
    }
    case 'thumbnail':
      // Random sizes (dynamic thumbnails): most requests render a new thumbnail, not a cached one.
      return `${auth}\n${walk(`ids = ${luaList(pools.images)}`)}
local methods = {"crop", "scale"}
request = function()
  local path = string.format("/_matrix/client/v1/media/thumbnail/${pools.tenant}/%s?width=%d&height=%d&method=%s",
    next_of(ids), math.random(16, 320), math.random(16, 240), methods[math.random(1, 2)])
  return wrk.format("GET", path)
end\n`;
    case 'upload':
      // A new 4 KiB body each time (a counter and a random number in front), so each upload stores a new blob.
      return `${auth}
wrk.headers["Content-Type"] = "application/octet-stream"
local padding = string.rep("soak", 1024)
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/_matrix/media/v3/upload", nil, string.format("%d %d ", n, math.random(1, 2147483647)) .. padding)
end\n`;
  }
}

export interface RunningLoad {
  /** Waits for every wrk process to finish its run; their summaries by kind. */
  finished(): Promise<Record<SoakKind, WrkResult>>;
  stop(): void;
}

/** Starts one wrk process per kind with its number of clients, for `seconds`. */
export function startLoad(baseUrl: string, pools: SoakPools, workDir: string, clients: Record<SoakKind, number>, seconds: number): RunningLoad {
  const children = SOAK_KINDS.map((kind) => {
    const file = join(workDir, `${kind}.lua`);
    writeFileSync(file, `math.randomseed(${Math.floor(Math.random() * 1e9)})\n${script(kind, pools)}`);
    const child = spawn(WRK, ['-t1', `-c${clients[kind]}`, `-d${seconds}s`, '--timeout', '30s', '-s', file, baseUrl], { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => { output += chunk.toString(); });
    const closed = once(child, 'close'); // after the last of its output, unlike 'exit'
    return { kind, child, closed, output: () => output };
  });
  return {
    finished: async () => {
      const results = {} as Record<SoakKind, WrkResult>;
      for (const { kind, closed, output } of children) {
        await closed;
        results[kind] = parseWrk(output());
      }
      return results;
    },
    stop: () => {
      for (const { child } of children) if (child.exitCode === null) child.kill('SIGTERM');
    },
  };
}
