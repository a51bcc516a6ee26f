// media-repo storage sweep | check | transfer: the datastore maintenance commands.
import cliProgress from 'cli-progress';
import { MEDIA_KINDS, type Config, type MediaKind } from '../config/config.js';
import { createLogger } from '../log.js';
import { removeCrashLeftovers } from '../media/crash-leftovers.js';
import { DatastoreTransfer, type TransferProgress } from '../media/datastore-transfer.js';
import { closeServices, openServices, type Services } from '../service.js';
import { UsageError, type CliIo } from './args.js';
import { checkStorage } from './storage-check.js';

export interface StorageFlags {
  from: string;
  to: string;
  kind: string;
  homeserver: string;
  /** Staging named by no instance (written by an older version) is swept past this age. */
  stagingAgeHours: string;
  /** storage check: presence only, without reading each blob. */
  quick: boolean;
  json: boolean;
}

/** Checks the flags before anything is opened, so a typo is a usage error. */
export function checkStorageFlags(command: string, flags: StorageFlags): void {
  if (command === 'storage transfer') {
    if (!flags.from || !flags.to) throw new UsageError('storage transfer needs --from and --to');
    if (flags.kind && !(MEDIA_KINDS as readonly string[]).includes(flags.kind)) throw new UsageError(`--kind must be one of ${MEDIA_KINDS.join(', ')}`);
  }
  if (command === 'storage sweep' && !(Number(flags.stagingAgeHours) >= 0)) throw new UsageError('--staging-age-hours must be a number of hours');
}

export async function runStorageCommand(command: string, config: Config, flags: StorageFlags, io: CliIo): Promise<void> {
  const services = await openServices(config, createLogger('warn', io.stderr));
  try {
    if (command === 'storage sweep') await sweep(services, Number(flags.stagingAgeHours), io);
    else if (command === 'storage check') await checkStorage(services, flags, io);
    else await transfer(services, flags, io);
  } finally {
    await closeServices(services);
  }
}

/** Unreferenced blobs (a crash between commit and row), then what dead instances left: staging and fetch locks. */
async function sweep(services: Services, stagingAgeHours: number, io: CliIo): Promise<void> {
  const { checked, deleted } = await services.blobs.sweepUnreferenced();
  io.stdout.write(`checked ${checked} stored files, deleted ${deleted} that nothing referenced\n`);
  const removed = await removeCrashLeftovers({ ...services, knex: services.db.knex }, stagingAgeHours * 3600_000);
  for (const [id, { staged, uploads }] of removed.staging) {
    io.stdout.write(`${id}: removed ${staged} staged copies and ${uploads} unfinished multipart uploads that no live instance owns\n`);
  }
  io.stdout.write(`removed ${removed.locks} remote fetch locks of dead instances\n`);
}

async function transfer(services: Services, flags: StorageFlags, io: CliIo): Promise<void> {
  const job = new DatastoreTransfer({ ...services, knex: services.db.knex }, {
    from: flags.from, to: flags.to, kind: (flags.kind || undefined) as MediaKind | undefined, homeserver: flags.homeserver || undefined,
  });
  const report = progressReporter(io);
  const failures: string[] = [];
  const outcome = await job.run(report.update, (sha256, error) => {
    failures.push(`${sha256}: ${error instanceof Error ? error.message : String(error)}`);
  });
  report.stop();
  for (const failure of failures) io.stderr.write(`not moved: ${failure}\n`);
  io.stdout.write(`moved ${outcome.done} of ${outcome.total} blobs from ${flags.from} to ${flags.to}, ${outcome.failed} failed\n`);
  if (outcome.failed > 0) throw new Error(`${outcome.failed} blobs were not moved; they stay readable where they are; run the transfer again`);
}

/** A progress bar on a terminal; elsewhere a plain line every 5% or 5 seconds. */
function progressReporter(io: CliIo): { update(progress: TransferProgress): void; stop(): void } {
  if ((io.stdout as { isTTY?: boolean }).isTTY) {
    const bar = new cliProgress.SingleBar({ format: 'transfer [{bar}] {value}/{total} blobs, {failed} failed, eta {eta_formatted}' }, cliProgress.Presets.shades_classic);
    let started = false;
    return {
      update: (p) => {
        if (!started) bar.start(p.total, 0, { failed: 0 });
        started = true;
        bar.update(p.done + p.failed, { failed: p.failed });
      },
      stop: () => bar.stop(),
    };
  }
  let last = 0;
  let lastCount = -1;
  return {
    update: (p) => {
      const now = Date.now();
      const count = p.done + p.failed;
      if (now - last < 5000 && count < p.total && count - lastCount < p.total / 20) return;
      last = now;
      lastCount = count;
      io.stdout.write(`transfer: ${p.done + p.failed}/${p.total} blobs, ${p.failed} failed\n`);
    },
    stop: () => {},
  };
}
