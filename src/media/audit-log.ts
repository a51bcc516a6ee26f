// Every admin action, who took it and on what, in a table admins can list (their homeserver's entries
// only, unless provider-wide). Actors are user IDs or a fixed label: tokens are never recorded.
import type { Knex } from 'knex';
import type { AdminScope } from './media-selection.js';

export interface AuditEntry {
  action: string;
  target: string;
  count: number;
  bytes: number;
  dryRun?: boolean;
  taskId?: number;
}

export interface AuditRow {
  id: number; ts: number; actor: string; scope: string | null; action: string; target: string;
  count: number; bytes: number; dry_run: boolean; task_id: number | null;
}

export class AuditLog {
  constructor(private readonly knex: Knex, private readonly now: () => number = Date.now) {}

  async record(scope: AdminScope, entry: AuditEntry): Promise<void> {
    await this.knex('admin_audit').insert({
      ts: this.now(), actor: scope.actor, scope: scope.homeserver, action: entry.action, target: entry.target,
      count: entry.count, bytes: entry.bytes, dry_run: entry.dryRun ?? false, task_id: entry.taskId ?? null,
    });
  }

  /** Newest first; `from` is the next_token of the previous page. */
  async list(scope: AdminScope, page: { from?: number; limit: number }): Promise<{ entries: AuditRow[]; next_token?: number }> {
    const query = this.knex<AuditRow>('admin_audit').orderBy('id', 'desc').limit(page.limit + 1);
    if (scope.homeserver !== null) query.where('scope', scope.homeserver);
    if (page.from !== undefined) query.where('id', '<=', page.from);
    const rows = await query;
    const more = rows.length > page.limit ? rows.pop() : undefined;
    return { entries: rows, ...(more ? { next_token: more.id } : {}) };
  }
}
