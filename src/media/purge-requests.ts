// A purge as an admin asks for it: a dry run (counts and bytes), a purge answered when done, or, past
// syncPurgeLimit media (or when asked), a background task. Every request is in the audit log.
import type { AdminTasks, TaskRow } from './admin-tasks.js';
import type { AuditLog } from './audit-log.js';
import { describeSelector, type AdminScope, type MediaSelector } from './media-selection.js';
import type { Purge } from './purge.js';

export const PURGE_TASK = 'purge_media';

export interface PurgeOptions { dryRun: boolean; background: boolean }

export type PurgeAnswer =
  | { dry_run: true; count: number; bytes: number }
  | { purged: true; count: number; bytes: number; affected: string[] }
  | { task_id: number; count: number; bytes: number };

interface PurgeTaskParams { selector: MediaSelector; scope: AdminScope }

export class PurgeRequests {
  constructor(
    private readonly purge: Purge,
    private readonly tasks: AdminTasks,
    private readonly audit: AuditLog,
    private readonly syncPurgeLimit: number,
  ) {
    tasks.handle(PURGE_TASK, (task, advance) => this.runTask(task, advance));
  }

  async request(selector: MediaSelector, scope: AdminScope, options: PurgeOptions): Promise<PurgeAnswer> {
    const estimate = await this.purge.check(selector, scope);
    const target = describeSelector(selector);
    if (options.dryRun) {
      await this.audit.record(scope, { action: 'purge', target, ...estimate, dryRun: true });
      return { dry_run: true, ...estimate };
    }
    if (options.background || estimate.count > this.syncPurgeLimit) {
      const params: PurgeTaskParams = { selector, scope };
      const task = await this.tasks.create(PURGE_TASK, params as unknown as Record<string, unknown>, scope, estimate.count);
      await this.audit.record(scope, { action: 'purge', target, ...estimate, taskId: task.task_id });
      return { task_id: task.task_id, ...estimate };
    }
    const done = await this.purge.purgeAll(selector, scope);
    await this.audit.record(scope, { action: 'purge', target, count: done.count, bytes: done.bytes });
    return { purged: true, count: done.count, bytes: done.bytes, affected: done.purged.map((k) => `mxc://${k.serverName}/${k.mediaId}`) };
  }

  private async runTask(task: TaskRow, advance: (done: number, bytes: number) => Promise<void>): Promise<Record<string, unknown>> {
    const { selector, scope } = task.params as unknown as PurgeTaskParams;
    // Resumed after a crash: a batch committed just before it went uncounted; what is left says how far it got.
    const left = (await this.purge.estimate(selector, scope)).count;
    const catchUp = Math.max(0, task.progress.total - left - task.progress.done);
    if (catchUp > 0) await advance(catchUp, 0);
    const done = await this.purge.purgeAll(selector, scope, (batch) => advance(batch.count, batch.bytes));
    return { count: task.progress.done + catchUp + done.count, bytes: task.progress.bytes + done.bytes };
  }
}
