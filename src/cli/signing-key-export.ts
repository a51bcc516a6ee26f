// What both key tools do last (matrix-media-repo's cmd/utilities/_common): check the format, write the file.
import { formatKeyFile, isKeyFileFormat, writeKeyFile, type KeyFileFormat, type SigningKey } from '../keys/key-files.js';
import { UsageError, type CliIo } from './args.js';

/** `-output -` writes the key file to stdout instead of a file. */
export const STDOUT_OUTPUT = '-';
export const DEFAULT_OUTPUT = './signing.key';
export const DEFAULT_FORMAT: KeyFileFormat = 'mmr';
export const FORMAT_USAGE = "The output format for the key. May be 'mmr', 'synapse', or 'dendrite'.";

export function outputFormat(value: string, program: string): KeyFileFormat {
  if (!isKeyFileFormat(value)) throw new UsageError(`Unknown output format '${value}'. Try '${program} -help' for information.`);
  return value;
}

export function outputPath(value: string): string {
  if (value === '') throw new UsageError(`-output must name a file, or '${STDOUT_OUTPUT}' for stdout`);
  return value;
}

export async function exportSigningKeys(keys: readonly SigningKey[], format: KeyFileFormat, output: string, io: CliIo): Promise<void> {
  if (output === STDOUT_OUTPUT) {
    io.stdout.write(formatKeyFile(keys, format));
    io.stderr.write(`Done! Signing key written to stdout in ${format} format\n`);
    return;
  }
  await writeKeyFile(output, keys, format);
  io.stderr.write(`Done! Signing key written to '${output}' in ${format} format\n`);
}
