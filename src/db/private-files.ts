// The embedded database's files are owner-only, as initdb makes PostgreSQL's: PGlite's filesystem layer
// creates them 0666 whatever the umask, so the folder is made 0700 (nothing inside is reachable by others,
// files made later included) and every file found 0600.
import { chmodSync, lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export function makeOwnerOnly(directory: string): void {
  chmodSync(directory, 0o700);
  for (const entry of readdirSync(directory, { withFileTypes: true })) {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) makeOwnerOnly(path);
    else if (entry.isFile() && (lstatSync(path).mode & 0o777) !== 0o600) chmodSync(path, 0o600);
  }
}
