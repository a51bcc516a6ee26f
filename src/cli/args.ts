// Flag parsing the way Go's `flag` package does it, so the key tools take the same command lines
// as matrix-media-repo's: -name value, -name=value, with one or two dashes, "--" ends the flags.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface FlagSpec {
  name: string;
  usage: string;
  defaultValue: string;
  /** A Go bool flag: "-name" alone means true; a value only as -name=false. */
  boolean?: boolean;
}

export interface ParsedArgs {
  flags: Map<string, string>;
  positionals: string[];
}

export interface TextSink {
  write(text: string): unknown;
}

export interface CliIo {
  stdout: TextSink;
  stderr: TextSink;
}

export type CliMain = (argv: string[], io: CliIo) => Promise<number>;

/** Go's flag package exits 2 on a usage error. */
export const USAGE_EXIT_CODE = 2;

export class UsageError extends Error {}

const HELP_FLAGS = new Set(['h', 'help']);

/**
 * Returns 'help' for -h/-help. Unlike Go, flags may also follow positional arguments: a command
 * line Go accepts means the same here unless it names a file starting with "-" (use "--").
 */
export function parseFlags(argv: readonly string[], specs: readonly FlagSpec[]): ParsedArgs | 'help' {
  const known = new Map(specs.map((spec) => [spec.name, spec]));
  const flags = new Map(specs.map((spec) => [spec.name, spec.defaultValue]));
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg.length < 2 || !arg.startsWith('-')) {
      positionals.push(arg);
      continue;
    }
    const body = arg.startsWith('--') ? arg.slice(2) : arg.slice(1);
    if (body === '' || body.startsWith('-') || body.startsWith('=')) throw new UsageError(`bad flag syntax: ${arg}`);
    const equals = body.indexOf('=');
    const name = equals < 0 ? body : body.slice(0, equals);
    if (HELP_FLAGS.has(name) && !known.has(name)) return 'help';
    if (!known.has(name)) throw new UsageError(`flag provided but not defined: -${name}`);
    if (equals >= 0) {
      flags.set(name, body.slice(equals + 1));
    } else if (known.get(name)!.boolean) {
      flags.set(name, 'true');
    } else {
      if (i + 1 >= argv.length) throw new UsageError(`flag needs an argument: -${name}`);
      flags.set(name, argv[++i]);
    }
  }
  return { flags, positionals };
}

/** Usage text in the layout of Go's flag.PrintDefaults. */
export function formatUsage(program: string, synopsis: string, specs: readonly FlagSpec[]): string {
  const lines = [`Usage of ${program}:`, `  ${program} ${synopsis}`];
  for (const spec of [...specs].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const fallback = spec.defaultValue === '' || spec.boolean ? '' : ` (default "${spec.defaultValue}")`;
    lines.push(`  -${spec.name}${spec.boolean ? '' : ' string'}`, `    \t${spec.usage}${fallback}`);
  }
  return `${lines.join('\n')}\n`;
}

/** A tool's shape: flags parsed first (usage errors exit 2, -help exits 0), then the action (failures exit 1). */
export async function runTool<T>(
  io: CliIo,
  usage: string,
  parse: () => T | 'help',
  act: (options: T) => Promise<void>,
): Promise<number> {
  let options: T | 'help';
  try {
    options = parse();
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr.write(`${error.message}\n${usage}`);
    return USAGE_EXIT_CODE;
  }
  if (options === 'help') {
    io.stderr.write(usage);
    return 0;
  }
  try {
    await act(options);
    return 0;
  } catch (error) {
    io.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

/** Runs `main` when this module is the program node was started with (through npm's bin symlink too). */
export function runAsMain(moduleUrl: string, main: CliMain): void {
  if (!isEntryModule(moduleUrl)) return;
  main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr }).then(
    (code) => exitSoon(code),
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
      exitSoon(1);
    },
  );
}

/** Exits with `code` once output is flushed, or after a grace period if a handle left open would keep the process up. */
function exitSoon(code: number): void {
  process.exitCode = code;
  setTimeout(() => process.exit(code), 2000).unref();
}

function isEntryModule(moduleUrl: string): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(moduleUrl));
  } catch {
    return false;
  }
}
