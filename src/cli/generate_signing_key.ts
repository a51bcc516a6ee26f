#!/usr/bin/env node
// generate_signing_key: makes a new Ed25519 signing key, or converts one (-input), in any of the
// formats; same flags and defaults as matrix-media-repo's tool of that name.
import { generateSigningKey, keyId, readKeyFile, type KeyFileFormat, type SigningKey } from '../keys/key-files.js';
import { formatUsage, parseFlags, runAsMain, runTool, UsageError, type CliIo, type FlagSpec } from './args.js';
import { DEFAULT_FORMAT, DEFAULT_OUTPUT, exportSigningKeys, FORMAT_USAGE, outputFormat, outputPath, STDOUT_OUTPUT } from './signing-key-export.js';

const PROGRAM = 'generate_signing_key';
const FLAGS: FlagSpec[] = [
  {
    name: 'input',
    usage:
      'When set to a file path, the signing key to convert to the output format. Any of the formats is detected. ' +
      'If the file holds several keys, only the first is converted (use combine_signing_keys for all).',
    defaultValue: '',
  },
  { name: 'format', usage: FORMAT_USAGE, defaultValue: DEFAULT_FORMAT },
  { name: 'output', usage: `The output file for the key, or '${STDOUT_OUTPUT}' for stdout.`, defaultValue: DEFAULT_OUTPUT },
];

interface Options {
  input: string;
  format: KeyFileFormat;
  output: string;
}

export async function run(argv: string[], io: CliIo): Promise<number> {
  return runTool(io, formatUsage(PROGRAM, '[flags]', FLAGS), () => parseOptions(argv), async (options) => {
    const key = await chooseKey(options.input, io);
    io.stderr.write(`Key ID will be '${keyId(key)}'\n`);
    await exportSigningKeys([key], options.format, options.output, io);
  });
}

function parseOptions(argv: string[]): Options | 'help' {
  const parsed = parseFlags(argv, FLAGS);
  if (parsed === 'help') return parsed;
  if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument: ${parsed.positionals[0]}`);
  return {
    input: parsed.flags.get('input')!,
    format: outputFormat(parsed.flags.get('format')!, PROGRAM),
    output: outputPath(parsed.flags.get('output')!),
  };
}

async function chooseKey(input: string, io: CliIo): Promise<SigningKey> {
  if (input === '') return generateSigningKey();
  const { format, keys } = await readKeyFile(input);
  io.stderr.write(`Read ${keys.length} key(s) from '${input}' in ${format} format\n`);
  if (keys.length > 1) io.stderr.write(`Only the first key is converted; use combine_signing_keys to convert them all\n`);
  return keys[0];
}

runAsMain(import.meta.url, run);
