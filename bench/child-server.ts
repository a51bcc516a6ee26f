// A reference server in its own process, like the service: the module `script` runs with `args`, prints
// its port on stdout, then serves until killed.
import { spawn } from 'node:child_process';
import { once } from 'node:events';

export interface ChildServer {
  url: string;
  stop(): Promise<void>;
}

export async function startChildServer(script: string, args: string[]): Promise<ChildServer> {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await once(child.stdout, 'data')) as [Buffer];
  return {
    url: `http://127.0.0.1:${line.toString().trim()}`,
    stop: async () => {
      child.kill('SIGTERM');
      if (child.exitCode === null) await once(child, 'exit');
    },
  };
}
