// Runs a script under Debian's /usr/bin/python3, which has Synapse's own signedjson/nacl/canonicaljson.
import { execFile } from 'node:child_process';

export const SYSTEM_PYTHON = '/usr/bin/python3';

/** Runs `script` with `input` on stdin and returns its stdout; a non-zero exit rejects with stderr. */
export function runPython(script: string, input = '', args: string[] = []): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(SYSTEM_PYTHON, ['-c', script, ...args], { timeout: 20_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`python failed: ${error.message}\n${stderr}`));
      else resolve(stdout);
    });
    child.stdin!.end(input);
  });
}
