// Child-process tests run the compiled media-repo, as npm start does. `npm test` builds first (pretest); a
// direct jest run rebuilds here when a source is newer than the build.
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

export const MEDIA_REPO_JS = join('dist', 'src', 'cli', 'media-repo.js');

function newestSource(): number {
  return Math.max(...['src', 'migrations'].flatMap((dir) =>
    readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => statSync(join(e.parentPath, e.name)).mtimeMs)));
}

/** The compiled entry point, built if missing or stale. */
export function builtMediaRepo(): string {
  let built = 0;
  try {
    built = statSync(MEDIA_REPO_JS).mtimeMs;
  } catch {
    // not built yet
  }
  if (built < newestSource()) {
    const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
    execFileSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { stdio: 'inherit' });
  }
  return MEDIA_REPO_JS;
}
