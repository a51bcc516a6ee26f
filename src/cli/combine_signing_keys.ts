#!/usr/bin/env node
// combine_signing_keys: merges the keys of several key files, of any formats, into one file, in
// order; same flags and defaults as matrix-media-repo's tool of that name.
import { readKeyFile, type KeyFileFormat, type SigningKey } from '../keys/key-files.js';
import { formatUsage, parseFlags, runAsMain, runTool, UsageError, type CliIo, type FlagSpec } from './args.js';
import { DEFAULT_FORMAT, DEFAULT_OUTPUT, exportSigningKeys, FORMAT_USAGE, outputFormat, outputPath, STDOUT_OUTPUT } from './signing-key-export.js';

const PROGRAM = 'combine_signing_keys';
const SYNOPSIS = '[flags] FILE...';
const FLAGS: FlagSpec[] = [
  { name: 'format', usage: FORMAT_USAGE, defaultValue: DEFAULT_FORMAT },
  {
    name: 'output',
    usage: `The output file for the key, or '${STDOUT_OUTPUT}' for stdout. Note that not all software will use multiple keys.`,
    defaultValue: DEFAULT_OUTPUT,
  },
];

interface Options {
  inputs: string[];
  format: KeyFileFormat;
  output: string;
}

export async function run(argv: string[], io: CliIo): Promise<number> {
  return runTool(io, formatUsage(PROGRAM, SYNOPSIS, FLAGS), () => parseOptions(argv), async (options) => {
    const keys = await readAllKeys(options.inputs, io);
    await exportSigningKeys(keys, options.format, options.output, io);
  });
}

function parseOptions(argv: string[]): Options | 'help' {
  const parsed = parseFlags(argv, FLAGS);
  if (parsed === 'help') return parsed;
  if (parsed.positionals.length === 0) throw new UsageError('no key files given to combine');
  return {
    inputs: parsed.positionals,
    format: outputFormat(parsed.flags.get('format')!, PROGRAM),
    output: outputPath(parsed.flags.get('output')!),
  };
}

/** Keeps file order and key order; a version seen twice is an error, since it would be ambiguous. */
async function readAllKeys(inputs: readonly string[], io: CliIo): Promise<SigningKey[]> {
  const sourceOfVersion = new Map<string, string>();
  const keys: SigningKey[] = [];
  for (const input of inputs) {
    io.stderr.write(`Reading ${input}\n`);
    const { keys: fileKeys } = await readKeyFile(input);
    for (const key of fileKeys) {
      const earlier = sourceOfVersion.get(key.version);
      if (earlier !== undefined) {
        throw new Error(`Duplicate key version '${key.version}': found in '${earlier}' and again in '${input}'`);
      }
      sourceOfVersion.set(key.version, input);
      keys.push(key);
    }
  }
  return keys;
}

runAsMain(import.meta.url, run);
