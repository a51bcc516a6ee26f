// Full collections once start-up is done: reading a config of thousands of homeservers leaves ~100 MiB of
// garbage, which an idle service would otherwise keep resident until traffic made V8 collect it.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

// Below this many homeservers start-up leaves little garbage, and the collections' pause (~0.1 s) buys nothing.
const MANY_HOMESERVERS = 1000;

export function collectStartupGarbage(homeservers: number): void {
  if (homeservers < MANY_HOMESERVERS) return;
  // The flag exposes gc() to contexts made after it is set (jest's leak detector takes the same path).
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  // The first frees the garbage; the second compacts what is left and hands the emptied pages back (measured).
  gc();
  gc();
}
