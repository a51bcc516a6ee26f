// Who uses how much: matrix-media-repo's usage reports and Synapse's users-media statistics, read from
// the media and thumbnail tables.
import type { Knex } from 'knex';
import { confine, type AdminScope } from './media-selection.js';

export interface UsageInfo { total: number; media: number; thumbnails: number }

export type UserStatsOrder = 'user_id' | 'media_count' | 'media_length';

export interface Page { from: number; limit: number }

export class Usage {
  constructor(private readonly knex: Knex, private readonly hosted: string[]) {}

  /** A server's media and thumbnails, counts and bytes (for a homeserver admin: what their users fetched). */
  async server(serverName: string, scope: AdminScope): Promise<{ raw_bytes: UsageInfo; raw_counts: UsageInfo }> {
    const sum = async (table: string) => {
      const query = confine(this.knex, this.knex(`${table} as m`).where('m.server_name', serverName), 'm', scope, this.hosted);
      const [row] = await query.select(this.knex.raw('count(*) AS count, COALESCE(sum(m.size), 0) AS bytes'));
      return { count: Number(row.count), bytes: Number(row.bytes) };
    };
    const media = await sum('media');
    const thumbnails = [await sum('thumbnails'), await sum('remote_thumbnails')].reduce((a, b) => ({ count: a.count + b.count, bytes: a.bytes + b.bytes }));
    return {
      raw_bytes: { total: media.bytes + thumbnails.bytes, media: media.bytes, thumbnails: thumbnails.bytes },
      raw_counts: { total: media.count + thumbnails.count, media: media.count, thumbnails: thumbnails.count },
    };
  }

  /** Per uploader of a hosted homeserver, optionally only `userIds`. */
  async users(serverName: string, userIds: string[]): Promise<Record<string, unknown>> {
    const query = this.knex('media').where({ server_name: serverName, is_remote: false }).whereNotNull('user_id').whereNotNull('sha256')
      .select('user_id', 'media_id', 'size').orderBy(['user_id', 'created_ts']);
    if (userIds.length > 0) query.whereIn('user_id', userIds);
    const out: Record<string, { raw_bytes: { total: number; media: number }; raw_counts: { total: number; media: number }; uploaded: string[] }> = {};
    for (const row of (await query) as Array<{ user_id: string; media_id: string; size: number }>) {
      const entry = (out[row.user_id] ??= { raw_bytes: { total: 0, media: 0 }, raw_counts: { total: 0, media: 0 }, uploaded: [] });
      entry.raw_bytes.total += row.size;
      entry.raw_bytes.media += row.size;
      entry.raw_counts.total++;
      entry.raw_counts.media++;
      entry.uploaded.push(`mxc://${serverName}/${row.media_id}`);
    }
    return out;
  }

  /** Synapse's GET /_synapse/admin/v1/statistics/users/media: biggest users with order_by=media_length&dir=b. */
  async userStats(serverName: string, page: Page, order: { by: UserStatsOrder; dir: 'f' | 'b' }): Promise<Record<string, unknown>> {
    const base = this.knex('media').where({ server_name: serverName, is_remote: false }).whereNotNull('user_id').whereNotNull('sha256')
      .groupBy('user_id').select('user_id', this.knex.raw('count(*)::int AS media_count'), this.knex.raw('COALESCE(sum(size), 0)::bigint AS media_length'));
    const [{ total }] = await this.knex.from(base.clone().as('u')).select(this.knex.raw('count(*)::int AS total'));
    const direction = order.dir === 'b' ? 'desc' : 'asc';
    const rows: Array<{ user_id: string; media_count: number; media_length: number }> = await base
      .orderBy([{ column: order.by, order: direction }, { column: 'user_id', order: 'asc' }]).offset(page.from).limit(page.limit);
    const users = rows.map((r) => ({ ...r, media_length: Number(r.media_length), displayname: r.user_id }));
    return { users, total, ...(page.from + rows.length < total ? { next_token: page.from + rows.length } : {}) };
  }

  /** A user's media, newest first, in Synapse's GET /_synapse/admin/v1/users/<user_id>/media shape. */
  async userMedia(userId: string, page: Page): Promise<Record<string, unknown>> {
    const mine = () => this.knex('media as m').where({ 'm.user_id': userId, 'm.is_remote': false });
    const [{ total }] = await mine().select(this.knex.raw('count(*)::int AS total'));
    const rows: Array<Record<string, unknown>> = await mine()
      .leftJoin('quarantined_media as q', (j) => j.on('q.server_name', 'm.server_name').andOn('q.media_id', 'm.media_id'))
      .select('m.server_name', 'm.media_id', 'm.content_type', 'm.size', 'm.upload_name', 'm.created_ts', 'm.last_access_ts', 'm.sha256', 'q.quarantined_by')
      .orderBy([{ column: 'm.created_ts', order: 'desc' }, { column: 'm.media_id' }]).offset(page.from).limit(page.limit);
    const media = rows.map((r) => ({
      media_id: r.media_id, mxc: `mxc://${String(r.server_name)}/${String(r.media_id)}`, media_type: r.content_type, media_length: r.size,
      upload_name: r.upload_name, created_ts: r.created_ts, last_access_ts: r.last_access_ts, sha256: r.sha256,
      quarantined_by: r.quarantined_by ?? null, safe_from_quarantine: false,
    }));
    return { media, total, ...(page.from + rows.length < total ? { next_token: page.from + rows.length } : {}) };
  }
}
