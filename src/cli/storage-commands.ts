// media-repo storage sweep | check | transfer: the datastore maintenance commands.
import cliProgress from 'cli-progress';
import { MEDIA_KINDS, type Config, type MediaKind } from '../config/config.js';
import { createLogger } from '../log.js';
import { DatastoreTransfer, type TransferProgress } from '../media/datastore-transfer.js';
import { closeServices, openServices, type Services } from '../service.js';
import { UsageError, type CliIo } from './args.js';

export interface StorageFlags {
  from: string;
  to: string;
  kind: string;
  homeserver: string;
  /** Staging leftovers older than this are swept (uploads in progress are younger). */
  stagingAgeHours: string;
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
    else if (command === 'storage check') await check(services, io);
    else await transfer(services, flags, io);
  } finally {
    await closeServices(services);
  }
}

/** Unreferenced blobs (a crash between commit and row), then staging leftovers, in every datastore. */
async function sweep(services: Services, stagingAgeHours: number, io: CliIo): Promise<void> {
  const { checked, deleted } = await services.blobs.sweepUnreferenced();
  io.stdout.write(`checked ${checked} stored files, deleted ${deleted} that nothing referenced\n`);
  for (const store of services.datastores.all()) {
    const { staged, uploads } = await store.sweepStaging(stagingAgeHours * 3600_000);
    io.stdout.write(`${store.id}: removed ${staged} staged copies and ${uploads} unfinished multipart uploads older than ${stagingAgeHours} h\n`);
  }
}

/** Every row's blob exists in the datastore the row names; exits 1 naming each one that does not. */
async function check(services: Services, io: CliIo): Promise<void> {
  const { rows } = await services.db.knex.raw<{ rows: Array<{ datastore_id: string; sha256: string }> }>(
    `SELECT DISTINCT datastore_id, sha256 FROM (SELECT datastore_id, sha256 FROM media WHERE sha256 IS NOT NULL
     UNION ALL SELECT datastore_id, sha256 FROM thumbnails UNION ALL SELECT datastore_id, sha256 FROM remote_thumbnails) b ORDER BY 1, 2`);
  let missing = 0;
  for (const { datastore_id: id, sha256 } of rows) {
    if (await services.datastores.get(id).has(sha256)) continue;
    missing++;
    io.stdout.write(`missing: ${id} ${sha256}\n`);
  }
  io.stdout.write(`checked ${rows.length} blobs referenced by rows, ${missing} missing\n`);
  if (missing > 0) throw new Error(`${missing} referenced blobs are missing from their datastore`);
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
