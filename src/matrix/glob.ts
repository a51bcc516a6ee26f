// User-ID globs as matrix-media-repo and Synapse take them: * any run of characters, ? exactly one.

/** A matcher for `glob`; every other character matches itself. */
export function globMatcher(glob: string): (value: string) => boolean {
  const pattern = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  const regex = new RegExp(`^${pattern}$`, 's');
  return (value) => regex.test(value);
}
