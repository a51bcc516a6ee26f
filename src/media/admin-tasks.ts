// Long admin operations as tasks in admin_tasks (matrix-media-repo's background tasks): any instance may
// run one, holding it by heartbeat; a task whose instance stopped heartbeating (it died) is taken over by
// the next instance that looks, and resumed. Task work must be safe to resume: purges re-select what is left.
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { Logger } from '../log.js';
import type { AdminScope } from './media-selection.js';

export interface TaskProgress { total: number; done: number; bytes: number }

export interface TaskRow {
  task_id: number; task_name: string; params: Record<string, unknown>; scope: string | null; created_by: string;
  start_ts: number; end_ts: number | null; error_message: string | null; progress: TaskProgress; result: Record<string, unknown> | null;
  owner: string | null; heartbeat_ts: number | null;
}

/** Runs a task to its end; `advance` records progress (and throws when the lease was lost). */
export type TaskHandler = (task: TaskRow, advance: (done: number, bytes: number) => Promise<void>) => Promise<Record<string, unknown>>;

export interface TaskSettings { heartbeatMs: number; staleMs: number; now?: () => number }

export class LeaseLost extends Error {}

export class AdminTasks {
  private readonly owner = randomUUID();
  private readonly handlers = new Map<string, TaskHandler>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private closed = false;
  // Only serving instances run tasks; the CLI and tools that merely create them do not.
  private started = false;
  private readonly now: () => number;

  constructor(private readonly knex: Knex, private readonly settings: TaskSettings, private readonly log: Logger) {
    this.now = settings.now ?? Date.now;
  }

  handle(name: string, handler: TaskHandler): void {
    this.handlers.set(name, handler);
  }

  /** Looks for runnable tasks every heartbeat, until close(). */
  start(): void {
    this.started = true;
    this.timer = setInterval(() => this.poke(), this.settings.heartbeatMs);
    this.timer.unref();
    this.poke();
  }

  async create(name: string, params: Record<string, unknown>, scope: AdminScope, total: number): Promise<TaskRow> {
    const [row] = await this.knex<TaskRow>('admin_tasks').insert({
      task_name: name, params: JSON.stringify(params) as unknown as Record<string, unknown>, scope: scope.homeserver, created_by: scope.actor,
      start_ts: this.now(), progress: JSON.stringify({ total, done: 0, bytes: 0 }) as unknown as TaskProgress,
    }).returning('*');
    this.poke();
    return row!;
  }

  async get(taskId: number): Promise<TaskRow | undefined> {
    return this.knex<TaskRow>('admin_tasks').where({ task_id: taskId }).first();
  }

  /** A homeserver admin sees the tasks its admins started; a provider-wide admin sees all. */
  async list(scope: AdminScope, unfinishedOnly: boolean): Promise<TaskRow[]> {
    const query = this.knex<TaskRow>('admin_tasks').orderBy('task_id');
    if (unfinishedOnly) query.whereNull('end_ts');
    if (scope.homeserver !== null) query.where('scope', scope.homeserver);
    return query;
  }

  /** Stops taking tasks; a task in progress stops at its next step and is left for another instance. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.running;
  }

  private poke(): void {
    if (this.running || this.closed || !this.started) return;
    this.running = this.runAvailable().catch((error: unknown) => {
      this.log.warn({ err: (error as Error).message }, 'admin task runner failed');
    }).finally(() => {
      this.running = undefined;
    });
  }

  private async runAvailable(): Promise<void> {
    for (let task = await this.claim(); task && !this.closed; task = await this.claim()) await this.run(task);
  }

  /** Takes the oldest unfinished task nobody holds (or whose holder went silent); never two instances at once. */
  private async claim(): Promise<TaskRow | undefined> {
    const at = this.now();
    const stale = at - this.settings.staleMs;
    const names = [...this.handlers.keys()];
    if (names.length === 0) return undefined;
    const { rows } = await this.knex.raw<{ rows: TaskRow[] }>(
      `UPDATE admin_tasks SET owner = ?, heartbeat_ts = ?
       WHERE task_id = (SELECT task_id FROM admin_tasks WHERE end_ts IS NULL AND task_name = ANY(?::text[])
                          AND (owner IS NULL OR heartbeat_ts < ?) ORDER BY task_id LIMIT 1 FOR UPDATE SKIP LOCKED)
         AND end_ts IS NULL AND (owner IS NULL OR heartbeat_ts < ?)
       RETURNING *`,
      [this.owner, at, names, stale, stale],
    );
    return rows[0];
  }

  private async run(task: TaskRow): Promise<void> {
    const progress = { ...task.progress };
    let lastBeat = this.now();
    const advance = async (done: number, bytes: number) => {
      progress.done += done;
      progress.bytes += bytes;
      if (this.closed) throw new LeaseLost('the instance is shutting down');
      const updated = await this.knex('admin_tasks').where({ task_id: task.task_id, owner: this.owner })
        .update({ progress: JSON.stringify(progress), heartbeat_ts: (lastBeat = this.now()) });
      if (updated !== 1) throw new LeaseLost('another instance took the task over');
    };
    // Steps may be slow (a large blob deletion): heartbeat between them too.
    const beat = setInterval(() => {
      if (this.now() - lastBeat >= this.settings.heartbeatMs) void advance(0, 0).catch(() => undefined);
    }, this.settings.heartbeatMs);
    try {
      const result = await this.handlers.get(task.task_name)!(task, advance);
      await this.finish(task, { result: JSON.stringify(result), progress: JSON.stringify(progress) });
    } catch (error) {
      if (error instanceof LeaseLost) {
        // Let another instance (or this one after restart) resume it at once.
        await this.knex('admin_tasks').where({ task_id: task.task_id, owner: this.owner }).update({ owner: null });
        return;
      }
      this.log.warn({ taskId: task.task_id, err: (error as Error).message }, 'admin task failed');
      await this.finish(task, { error_message: (error as Error).message, progress: JSON.stringify(progress) });
    } finally {
      clearInterval(beat);
    }
  }

  private async finish(task: TaskRow, fields: Record<string, unknown>): Promise<void> {
    await this.knex('admin_tasks').where({ task_id: task.task_id, owner: this.owner }).update({ ...fields, end_ts: this.now(), owner: null });
  }
}

/** matrix-media-repo's task shape. */
export function taskJson(task: TaskRow): Record<string, unknown> {
  return {
    task_id: task.task_id,
    task_name: task.task_name,
    params: task.params,
    start_ts: task.start_ts,
    end_ts: task.end_ts ?? 0,
    is_finished: task.end_ts !== null,
    error_message: task.error_message ?? '',
    progress: task.progress,
    result: task.result,
  };
}
